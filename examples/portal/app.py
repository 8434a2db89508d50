"""``create_app(overrides=None)``: the sample portal (``gunicorn 'examples.portal.app:create_app()'``)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException

from services.common.config import load_or_exit

from . import auth, views
from .layout import STATIC, init_layout
from .settings import DEV_SECRET_KEY, PortalSettings
from .store import make_backend

log = logging.getLogger("portico.portal")


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(PortalSettings, **(overrides or {}))
    app = Flask(__name__, static_folder=str(STATIC))
    if settings.secret_key == DEV_SECRET_KEY:
        log.warning("PORTAL_SECRET_KEY is the dev default; set it outside development")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="portal_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
    )
    auth.init_oauth(app, settings, make_backend(settings.redis_url, settings.redis_prefix))
    app.jinja_env.globals["csrf_token"] = auth.csrf_token
    init_layout(app)
    app.before_request(auth.check_csrf)
    app.register_blueprint(auth.bp)
    app.register_blueprint(views.bp)
    app.register_error_handler(auth.SignedOut, views.signed_out)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.response is not None:
            return error.response
        return render_template("error.html", title=error.name,
                               message=error.description), error.code

    @app.after_request
    def _headers(response):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Content-Security-Policy", "default-src 'self'")
        return response

    return app
