"""The tracking service's app factory (gunicorn: `services.tracking.app:create_app()`)."""

from __future__ import annotations

from typing import Any

from flask import Flask, Response

from services.common.app import create_service_app, request_id
from services.common.auth import init_auth
from services.common.config import load_or_exit
from services.common.errors import Conflict, NotFound, Problem, problem_response
from services.common.powers import checks_from_settings, init_powers

from .api import ProblemApi
from .domain import IdempotencyKeyReused, IllegalTransition, TransactionExists, TransactionNotFound
from .settings import TrackingSettings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_or_exit(TrackingSettings, **(overrides or {}))
    app = create_service_app("tracking", settings)
    init_auth(app, "tracking")
    init_powers(app, checks_from_settings(settings))
    _install_api(app)
    _install_domain_errors(app)
    return app


def _install_api(app: Flask) -> None:
    from .api.views import blp

    app.config.update(
        API_TITLE="Portico tracking", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json",
    )
    api = ProblemApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.register_blueprint(blp)


def _install_domain_errors(app: Flask) -> None:
    """The service layer's exceptions → problem+json, in one place."""

    def answer(problem: Problem) -> Response:
        return problem_response(problem, request_id())

    @app.errorhandler(IllegalTransition)
    def _illegal(exc: IllegalTransition) -> Response:
        return answer(Conflict(str(exc), kind="illegal-transition",
                               current_status=exc.current, requested_status=exc.requested))

    @app.errorhandler(TransactionNotFound)
    def _not_found(exc: TransactionNotFound) -> Response:
        return answer(NotFound("No transaction with this tracking number was found."))

    @app.errorhandler(TransactionExists)
    def _exists(exc: TransactionExists) -> Response:
        return answer(Conflict("A transaction with this tracking number is already registered.",
                               kind="transaction-exists"))

    @app.errorhandler(IdempotencyKeyReused)
    def _reused(exc: IdempotencyKeyReused) -> Response:
        return answer(Problem(422, "idempotency-key-reused",
                              "This Idempotency-Key was already used with a different request."))
