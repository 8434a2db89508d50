"""Enrollment, email verification and first login (PIN + Word + Access Code).

``init_app(app)`` registers the HTML pages and the JSON API on identity's app.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from flask import Flask

from services.common.events import utcnow

from .i18n import init_i18n


@dataclass
class EnrollmentExtension:
    clock: Callable[[], datetime] = field(default=utcnow)  # tests swap in their own clock

    def now(self) -> datetime:
        return self.clock()


def init_app(app: Flask) -> None:
    from . import models  # noqa: F401  (registers the tables on identity's Base)
    from .api import bp as api_bp
    from .views import bp as views_bp

    app.extensions["enrollment"] = EnrollmentExtension()
    init_i18n(app)
    app.register_blueprint(views_bp)
    app.register_blueprint(api_bp)

