from alembic import context

from services.common.db import run_migrations
from services.tracking.models import Base

run_migrations(context, Base.metadata, "tracking")
