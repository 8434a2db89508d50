"""Enrollment, email verification and first login (PIN + Word + Access Code).

``init_app(app)`` registers the HTML pages (:mod:`.pages`) on identity's app; the JSON API
(:mod:`.api`) is registered with identity's other APIs (services/identity/api).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from services.common.app import context

from .config import EnrollmentConfig, config_from


@dataclass
class EnrollmentExtension:
    config: EnrollmentConfig  # built once, on the service's clock


def init_app(app: Flask) -> None:
    from .pages import bp as pages_bp

    ctx = context(app)
    app.extensions["enrollment"] = EnrollmentExtension(
        config=config_from(ctx.settings, clock=ctx.now))
    app.register_blueprint(pages_bp)

