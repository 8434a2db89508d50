"""The identity service's app factory (gunicorn: `services.identity.app:create_app()`)."""

from __future__ import annotations

import logging
import os
from typing import Any

import redis
from flask import Flask, Response, jsonify, request

from services.common.app import (
    context,
    create_service_app,
    log_dependency_unavailable,
    request_id,
)
from services.common.auth import init_auth
from services.common.config import load_or_exit
from services.common.errors import (
    DEPENDENCY_ERRORS,
    RETRY_DEPENDENCY_AFTER,
    problem_response,
    unavailable_problem,
)
from services.common.powers import MintedToken, PermissionsChecks, init_powers

from . import sessions
from .api import init_api
from .enrollment import init_app as init_enrollment
from .factors import init_app as init_factors
from .i18n import init_i18n
from .lifecycle import init_app as init_lifecycle
from .oidc.fast import init_fast_tokens
from .oidc.keys import SigningKeyUnavailable
from .oidc.server import OAUTH_UNAVAILABLE, init_oidc
from .pages import init_pages
from .ratelimit import init_rate_limits, token_limits
from .settings import DEV_CLIENT_SECRET_PEPPER, DEV_KEY_ENCRYPTION_KEY, IdentitySettings
from .views.login import bp as login_views
from .views.oauth import bp as oauth_views
from .views.oauth import init_fast_documents

log = logging.getLogger("portico.identity")

TEMPLATES = os.path.join(os.path.dirname(__file__), "templates")
OAUTH_JSON_ENDPOINTS = ("oauth.token", "oauth.revoke", "oauth.introspect", "oauth.userinfo")


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(IdentitySettings, **(overrides or {}))
    app = create_service_app("identity", settings, template_folder=TEMPLATES)
    if settings.key_encryption_key == DEV_KEY_ENCRYPTION_KEY:
        log.warning("KEY_ENCRYPTION_KEY is the development default: set it in production")
    if settings.client_secret_pepper == DEV_CLIENT_SECRET_PEPPER:
        log.warning("CLIENT_SECRET_PEPPER is the development default: set it in production")
    init_oidc(app)
    init_auth(app, settings.admin_audience)
    # Identity signs its own service token for permissions (it is the issuer).
    provider = app.extensions["portico.oidc"]
    init_powers(app, PermissionsChecks(settings.permissions_url,
                                       MintedToken(provider.provider.entitlements.service_token),
                                       timeout=settings.entitlements_timeout))
    app.register_blueprint(oauth_views)
    init_fast_documents(app)
    app.register_blueprint(login_views)
    init_i18n(app)
    init_enrollment(app)
    init_lifecycle(app)
    init_factors(app)
    init_api(app)
    init_pages(app)
    init_rate_limits(app, settings)
    init_fast_tokens(app.extensions["portico.oidc"], token_limits(app),
                     context(app).fast_routes)
    app.after_request(sessions.apply_cookie)
    _install_fail_closed(app)
    return app


def _install_fail_closed(app: Flask) -> None:
    """Redis or the database down, or no signing key → 503 (never unlimited attempts,
    never a 500), in RFC 6749's shape on the OAuth endpoints."""

    def _unavailable(exc: Exception) -> Response:
        # No signing key yet (before `iamctl bootstrap`/`keys rotate`) is as temporary as Redis.
        log_dependency_unavailable(exc)
        if request.endpoint in OAUTH_JSON_ENDPOINTS:
            response = jsonify(OAUTH_UNAVAILABLE)
            response.status_code = 503
            response.headers["Retry-After"] = RETRY_DEPENDENCY_AFTER
        else:
            response = problem_response(unavailable_problem(), request_id())
        response.headers["Cache-Control"] = "no-store"
        return response

    for error in (redis.RedisError, SigningKeyUnavailable, *DEPENDENCY_ERRORS):
        app.register_error_handler(error, _unavailable)
