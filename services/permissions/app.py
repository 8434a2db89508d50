"""The permissions service's app factory (gunicorn: `services.permissions.app:create_app()`)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.common.app import create_service_app
from services.common.auth import init_auth
from services.common.config import load_or_exit
from services.common.events import utcnow

from .api import init_api
from .api.checks import init_fast_checks
from .cache import INVALIDATOR, SNAPSHOTS, Invalidator, SnapshotCache
from .checks import load_snapshots
from .settings import PermissionsSettings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(PermissionsSettings, **(overrides or {}))
    app = create_service_app("permissions", settings)
    ctx = app.extensions["portico"]
    init_auth(app, "permissions")

    def load(user_ids: list[str]) -> dict[str, Any]:
        with ctx.db.read() as session:
            return load_snapshots(session, user_ids, utcnow())

    invalidator = Invalidator(ctx.redis, settings.redis_namespace)
    app.extensions[INVALIDATOR] = invalidator
    ctx.db.session_info[INVALIDATOR] = invalidator  # every use case's session carries it
    # A check's keys: the subjects' versions and (init_auth watches those) the caller's
    # deny-list entry.
    ctx.watched.watch(invalidator.version_key(""))
    app.extensions[SNAPSHOTS] = SnapshotCache(
        ctx.redis, settings.redis_namespace, load, watched=ctx.watched,
        max_entries=settings.cache_max_entries, max_age=settings.cache_max_age_s)
    init_api(app)
    init_fast_checks(app)
    return app
