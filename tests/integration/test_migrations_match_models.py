"""Each service's Alembic migrations build exactly the tables its models declare: an
index or column declared on a model and missing from the migrations would exist in tests
(tables created from the models) and not in production."""

from __future__ import annotations

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from services.common.db import Database, upgrade

# The modules whose models make up each service's metadata (all of them imported).
MODELS = {
    "identity": ("services.identity.models", "services.identity.enrollment.models",
                 "services.identity.lifecycle.models", "services.identity.oidc.models",
                 "services.identity.factors.models",
                 "services.identity.factors.passkey_models"),
    "notifier": ("services.notifier.models",),
    "permissions": ("services.permissions.models",),
}


@pytest.mark.parametrize("service", sorted(MODELS))
def test_migrations_match_the_models(database_url, service):
    base = [importlib.import_module(name) for name in MODELS[service]][0].Base
    url = database_url(service)
    upgrade(service, url)
    db = Database(url)
    try:
        with db.engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"version_table": f"alembic_version_{service}"})
            assert compare_metadata(context, base.metadata) == []
    finally:
        db.dispose()
