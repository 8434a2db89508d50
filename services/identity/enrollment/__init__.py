"""Enrollment, email verification and first login (PIN + Word + Access Code).

``init_app(app)`` registers the HTML pages (:mod:`.pages`) on identity's app; the JSON API
(:mod:`.api`) is registered with identity's other APIs (services/identity/api).
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
    from .pages import bp as pages_bp

    app.extensions["enrollment"] = EnrollmentExtension()
    init_i18n(app)
    app.register_blueprint(pages_bp)

