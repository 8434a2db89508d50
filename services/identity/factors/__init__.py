"""A user's factors beyond the password: TOTP (``totp.py``), passkeys (``passkeys.py``,
signing in with one: ``passkey_login.py``) and recovery codes (``recovery_codes.py``);
their tables are in ``models.py`` and ``passkey_models.py``, the ``/account/security``
page and its forms in ``pages.py`` (the passkey ceremonies' JSON: ``views/passkeys.py``).
A company's MFA policy: the rule in ``policy.py``, its use cases in
``company_policy.py``, its APIs in ``policy_api.py`` and the after-sign-in page that
applies it in ``prompt_pages.py``.

``init_app(app)`` builds the factors' and the passkeys' configuration once (after the
lifecycle's, whose clock, lockout and events they share), registers the page, and gives
the templates ``passkeys_here()``.
"""

from __future__ import annotations

from urllib.parse import urlsplit

from flask import Flask

from services.common.app import context


def init_app(app: Flask) -> None:
    from . import passkeys
    from .config import config_from
    from .pages import bp
    from .policy_api import init_principals
    from .prompt_pages import bp as prompt_bp

    settings = context(app).settings
    lifecycle = app.extensions["lifecycle"].config
    app.extensions["factors"] = config_from(settings, lifecycle)
    app.extensions["passkeys"] = passkeys.config_from(settings, lifecycle.now)
    app.jinja_env.globals["passkeys_here"] = _passkeys_here
    init_principals(app)
    app.register_blueprint(bp)
    app.register_blueprint(prompt_bp)


def _passkeys_here() -> bool:
    """For the pages: whether to offer passkeys on this request's host."""
    from flask import current_app, request

    from . import passkeys

    return passkeys.usable_on(current_app.extensions["passkeys"],
                              urlsplit(request.host_url).hostname or "")
