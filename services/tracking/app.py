"""The tracking service's app factory (gunicorn: `services.tracking.app:create_app()`)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.common.api import init_api
from services.common.app import create_service_app
from services.common.auth import init_auth
from services.common.config import load_or_exit
from services.common.powers import checks_from_settings, init_powers

from .api.views import blp
from .settings import TrackingSettings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(TrackingSettings, **(overrides or {}))
    app = create_service_app("tracking", settings)
    init_auth(app, "tracking")
    init_powers(app, checks_from_settings(settings))
    init_api(app, title="Portico tracking", version="v1", blueprints=(blp,))
    return app

