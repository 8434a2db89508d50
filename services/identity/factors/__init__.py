"""A user's factors beyond the password: TOTP (``totp.py``) and recovery codes
(``recovery_codes.py``); their tables are in ``models.py``, the ``/account/security``
page in ``pages.py``.

``init_app(app)`` builds the factors' configuration once (after the lifecycle's, whose
clock, lockout and events they share) and registers the page.
"""

from __future__ import annotations

from flask import Flask

from services.common.app import context


def init_app(app: Flask) -> None:
    from .config import config_from
    from .pages import bp

    app.extensions["factors"] = config_from(context(app).settings,
                                            app.extensions["lifecycle"].config)
    app.register_blueprint(bp)
