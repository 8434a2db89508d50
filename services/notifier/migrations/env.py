from alembic import context

from services.common.db import run_migrations
from services.notifier.models import Base

run_migrations(context, Base.metadata, "notifier")
