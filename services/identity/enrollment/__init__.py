"""Enrollment, email verification and first login (PIN + Word + Access Code).

``init_app(app)`` registers the HTML pages and the JSON API on identity's app.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from services.common.app import context

from .config import EnrollmentConfig, config_from
from .i18n import init_i18n


@dataclass
class EnrollmentExtension:
    config: EnrollmentConfig  # built once, on the service's clock


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (registers the tables on identity's Base)
    from .api import bp as api_bp
    from .views import bp as views_bp

    ctx = context(app)
    app.extensions["enrollment"] = EnrollmentExtension(
        config=config_from(ctx.settings, clock=ctx.now))
    init_i18n(app)
    app.register_blueprint(views_bp)
    app.register_blueprint(api_bp)

