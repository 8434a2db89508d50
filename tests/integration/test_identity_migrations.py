"""identity's Alembic migrations build exactly the tables its models declare (the
notifier has the same test): an index declared on a model and missing from the
migrations would exist in tests (tables created from the models) and not in production."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import services.identity.enrollment.models  # noqa: F401 (every model on the metadata)
import services.identity.lifecycle.models  # noqa: F401
import services.identity.oidc.models  # noqa: F401
from services.common.db import Database, upgrade
from services.identity.models import Base


def test_migrations_match_the_models(database_url):
    url = database_url("identity")
    upgrade("identity", url)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": "alembic_version_identity"})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        db.dispose()
