"""The identity service's app factory (gunicorn: `services.identity.app:create_app()`)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.common.app import create_service_app
from services.common.config import load_or_exit

from .settings import IdentitySettings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(IdentitySettings, **(overrides or {}))
    app = create_service_app("identity", settings)
    return app
