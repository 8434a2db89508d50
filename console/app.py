"""``create_app(overrides=None)``: the help-desk console (``gunicorn 'console.app:create_app()'``)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, redirect, render_template, url_for
from flask_babel import gettext
from werkzeug.exceptions import HTTPException

from examples.portal.layout import STATIC
from services.common.config import load_or_exit

from . import auth, views
from .layout import init_layout
from .settings import DEV_SECRET_KEY, ConsoleSettings

log = logging.getLogger("portico.console")
CSP = "default-src 'self'; form-action 'self' {issuer}; frame-ancestors 'none'"


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(ConsoleSettings, **(overrides or {}))
    app = Flask(__name__, static_folder=str(STATIC))
    if settings.secret_key == DEV_SECRET_KEY:
        log.warning("CONSOLE_SECRET_KEY is the dev default; set it outside development")
    app.config.update(
        SECRET_KEY=settings.secret_key,
        SESSION_COOKIE_NAME="console_session",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=settings.base_url.startswith("https://"),
    )
    auth.init_auth(app, settings)
    init_layout(app)
    app.register_blueprint(views.bp)
    csp = CSP.format(issuer=settings.issuer.rstrip("/"))

    @app.errorhandler(auth.SignedOut)
    def _signed_out(_error):
        return redirect(url_for("console.search"), 303)

    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException):
        if error.response is not None:
            return error.response
        return render_template("error.html", user=auth.current_user(),
                               title=_error_title(error.code),
                               message=_error_message(error)), error.code

    @app.after_request
    def _headers(response):
        response.headers.setdefault("Cache-Control", "no-store")
        response.headers.setdefault("X-Frame-Options", "DENY")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        response.headers.setdefault("Content-Security-Policy", csp)
        return response

    return app


def _error_title(code: int | None) -> str:
    if code == 404:
        return gettext("Not found")
    if code == 403:
        return gettext("Not allowed")
    if code in (502, 503, 504):
        return gettext("The console cannot reach Portico")
    return gettext("This request cannot be completed")


def _error_message(error: HTTPException) -> str:
    """The view's own description (identity's translated detail or the console's), else a
    translated one in place of werkzeug's English default."""
    if error.description and error.description != type(error).description:
        return error.description
    if error.code == 404:
        return gettext("There is no page at this address.")
    return gettext("Go back to the search and try again.")
