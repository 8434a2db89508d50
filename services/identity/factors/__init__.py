"""A user's factors beyond the password: TOTP (``totp.py``) and recovery codes
(``recovery_codes.py``); their tables are in ``models.py``, the ``/account/security``
page in ``pages.py``. A company's MFA policy: the rule in ``policy.py``, its use cases in
``company_policy.py``, its APIs in ``policy_api.py`` and the after-sign-in page that
applies it in ``prompt_pages.py``.

``init_app(app)`` builds the factors' configuration once (after the lifecycle's, whose
clock, lockout and events they share) and registers the page.
"""

from __future__ import annotations

from flask import Flask

from services.common.app import context


def init_app(app: Flask) -> None:
    from .config import config_from
    from .pages import bp
    from .policy_api import init_principals
    from .prompt_pages import bp as prompt_bp

    app.extensions["factors"] = config_from(context(app).settings,
                                            app.extensions["lifecycle"].config)
    init_principals(app)
    app.register_blueprint(bp)
    app.register_blueprint(prompt_bp)
