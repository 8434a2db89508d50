"""The permissions service's app factory (gunicorn: `services.permissions.app:create_app()`)."""

from __future__ import annotations

from typing import Any

from flask import Flask

from services.common.app import create_service_app
from services.common.config import load_or_exit

from .settings import PermissionsSettings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(PermissionsSettings, **(overrides or {}))
    app = create_service_app("permissions", settings)
    return app
