"""The HTTP layer: flask-smorest blueprints that parse (marshmallow), call a use case
and render. Errors stay the kernel's application/problem+json."""

from __future__ import annotations

from flask import Flask
from flask_smorest import Api

from services.common.app import request_id
from services.common.errors import Problem, problem_response

from ..domain import (
    ConflictError,
    Forbidden,
    IllegalTransition,
    Invalid,
    Missing,
    PermissionsError,
)

STATUS = {IllegalTransition: 409, ConflictError: 409, Forbidden: 403, Missing: 404, Invalid: 422}


class ProblemApi(Api):
    """flask-smorest without its own HTTPException handler: the kernel's problem+json
    handlers (installed by ``create_service_app``) keep answering every error."""

    def _register_error_handlers(self) -> None:
        return None


def init_api(app: Flask) -> Api:
    app.config.update(
        API_TITLE="Portico permissions", API_VERSION="1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
    )
    api = ProblemApi(app, spec_kwargs={"info": {"description": (
        "Entitlements, principal administrators, access requests, checks and the "
        "home page. Every error is application/problem+json (RFC 9457).")}})
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.spec.options["security"] = [{"bearerAuth": []}]
    from . import access_requests, admin, checks, memberships, users

    for module in (checks, access_requests, memberships, users, admin):
        api.register_blueprint(module.blp)

    @app.errorhandler(PermissionsError)
    def _refused(exc: PermissionsError):
        status = next((code for cls, code in STATUS.items() if isinstance(exc, cls)), 400)
        errors = exc.errors if isinstance(exc, Invalid) else None
        return problem_response(Problem(status, exc.kind, exc.detail, errors=errors),
                                request_id())

    return api
