from alembic import context

from services.common.db import run_migrations
from services.identity.tables import identity_metadata

run_migrations(context, identity_metadata(), "identity")
