"""Signing in to the console: the sample portal's relying-party code serves as it is
(:mod:`examples.portal.auth`: authorization code + PKCE S256, tokens kept server-side under
a random session id, rotating refresh under a lock, CSRF on every POST, RP-initiated
logout). The console registers the same blueprint with its own home (``HOME_ENDPOINT``)."""

from __future__ import annotations

from flask import Flask, current_app

from examples.portal.auth import (
    SignedOut,
    access_token,
    bp,
    check_csrf,
    csrf_token,
    current_user,
    init_oauth,
)
from examples.portal.store import make_backend

from .settings import ConsoleSettings

__all__ = ["SignedOut", "access_token", "bp", "check_csrf", "csrf_token", "current_user",
           "init_auth", "settings"]

HOME_ENDPOINT = "console.search"
REGISTER_COMMAND = "python -m console.register"


def init_auth(app: Flask, config: ConsoleSettings) -> None:
    """Portico as the console's OAuth client, the session store, CSRF and the auth views."""
    app.config.update(HOME_ENDPOINT=HOME_ENDPOINT, REGISTER_COMMAND=REGISTER_COMMAND)
    init_oauth(app, config, make_backend(config.redis_url, config.redis_prefix))
    app.jinja_env.globals["csrf_token"] = csrf_token
    app.before_request(check_csrf)
    app.register_blueprint(bp)


def settings() -> ConsoleSettings:
    # The portal's auth module keeps the app's settings under this name.
    return current_app.extensions["portal.settings"]
