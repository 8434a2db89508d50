"""Every service answers health, readiness and metrics, and its migrations build its schema."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from services.common.db import Database, upgrade

SERVICES = ["identity", "permissions", "tracking", "notifier"]


@pytest.mark.parametrize("service", SERVICES)
def test_health_ready_and_metrics(make_app, service):
    client = make_app(service).test_client()

    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.json == {"status": "ok", "service": service}

    ready = client.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"]["database"] is True
    assert ready.json["checks"]["redis"] is True

    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'portico_http_requests_total{{endpoint="/readyz",method="GET",service="{service}",status="200"}} 1.0' in metrics


@pytest.mark.parametrize("service", SERVICES)
def test_readyz_is_503_when_redis_is_down(make_app, service):
    client = make_app(service, redis_url="redis://127.0.0.1:1/0").test_client()
    ready = client.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"] == {"database": True, "redis": False}


@pytest.mark.parametrize("service", SERVICES)
def test_migrations_create_every_table_of_the_models(database_url, service):
    import importlib

    url = database_url(service)
    upgrade(service, url)
    models = importlib.import_module(f"services.{service}.models")
    db = Database(url)
    tables = set(inspect(db.engine).get_table_names())
    db.dispose()
    assert set(models.Base.metadata.tables) <= tables
