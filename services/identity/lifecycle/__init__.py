"""The account lifecycle: lockout, inactivity, help desk, recovery and profile.

``init_app(app)`` registers the pages (``*_pages.py``) on identity's app and puts the
lifecycle rules in front of the login page; the JSON APIs (``*_api.py``) are registered
with identity's other APIs (services/identity/api). Keep this module light: ``service.py``
imports :mod:`.login_rules`, so nothing here may import the views at import time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from functools import wraps

from flask import Flask, request

from services.common.events import utcnow


@dataclass
class LifecycleExtension:
    clock: Callable[[], datetime] = field(default=utcnow)  # tests swap in their own clock


def init_app(app: Flask) -> None:
    from services.identity.enrollment.i18n import init_i18n

    from . import models  # noqa: F401  (registers the tables on identity's Base)
    from .profile_pages import bp as profile_bp
    from .recovery_pages import bp as recovery_bp

    app.extensions["lifecycle"] = LifecycleExtension()
    init_i18n(app)
    app.register_blueprint(recovery_bp)
    app.register_blueprint(profile_bp)
    _guard_login(app)


def _guard_login(app: Flask) -> None:
    """Run the login page with the lifecycle configuration; an inactive user who gave the
    right password sees the help-desk message instead of the generic refusal."""
    from .inactive_page import inactive_page
    from .login_rules import CURRENT, REFUSAL
    from .web import cfg

    view = app.view_functions["login.login"]

    @wraps(view)
    def login_with_lifecycle(*args, **kwargs):
        token = CURRENT.set(cfg())
        REFUSAL.set(None)
        try:
            response = view(*args, **kwargs)
            refusal = REFUSAL.get()
            if request.method == "POST" and refusal is not None and (
                    refusal.reason == "inactive"):
                return inactive_page(refusal.preferred_language, refusal.inactivity_days)
            return response
        finally:
            CURRENT.reset(token)

    app.view_functions["login.login"] = login_with_lifecycle
