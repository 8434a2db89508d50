"""The account lifecycle: lockout, inactivity, help desk, recovery and profile.

``init_app(app)`` registers the pages (``*_pages.py``) on identity's app and builds the
lifecycle configuration, once, on the service's clock; the JSON APIs (``*_api.py``) are
registered with identity's other APIs (services/identity/api). The login page passes that
configuration to ``services.identity.service.authenticate`` (see :mod:`.login_rules`).
Keep this module light: ``service.py`` imports :mod:`.login_rules`, so nothing here may
import the views at import time.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask

from services.common.app import context

from .config import LifecycleConfig, config_from


@dataclass
class LifecycleExtension:
    config: LifecycleConfig  # built once, on the service's clock


def init_app(app: Flask) -> None:
    from .profile_pages import bp as profile_bp
    from .recovery_pages import bp as recovery_bp

    ctx = context(app)
    app.extensions["lifecycle"] = LifecycleExtension(
        config=config_from(ctx.settings, clock=ctx.now))
    app.register_blueprint(recovery_bp)
    app.register_blueprint(profile_bp)
