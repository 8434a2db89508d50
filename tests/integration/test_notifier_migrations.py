"""The notifier's Alembic migrations build exactly the tables its models declare."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import Database, upgrade
from services.notifier.models import Base


def test_migrations_match_the_models(database_url):
    url = database_url("notifier")
    upgrade("notifier", url)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"version_table": "alembic_version_notifier"})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        db.dispose()
