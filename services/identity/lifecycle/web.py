"""What the lifecycle's pages and APIs share: configuration, actors, rate limits, JSON."""

from __future__ import annotations

from typing import Any

from flask import current_app, jsonify, render_template, request
from marshmallow import Schema, ValidationError

from services.common.app import context, request_id
from services.common.errors import Problem, flatten_errors
from services.identity import sessions
from services.identity.ratelimit import limit_request

from .config import LifecycleConfig
from .domain import Actor
from .i18n import _, language


def cfg() -> LifecycleConfig:
    """The lifecycle configuration the app was created with."""
    return current_app.extensions["lifecycle"].config


def client_ip() -> str:
    return request.remote_addr or "-"


def anonymous() -> Actor:
    return Actor("anonymous", None, client_ip(), request_id())


def user_actor(user_id: str) -> Actor:
    return Actor("user", user_id, client_ip(), request_id())


def limit(scope: str, target: str | None = None) -> None:
    """Count this unauthenticated request per client IP and, when given, per target."""
    settings = context().settings
    limit_request(scope, settings.recovery_rate_limit_ip, settings.recovery_rate_limit_target,
                  target)


def limit_link(scope: str) -> None:
    """Count a request that carries an emailed link's token, per client IP. The token
    (256 random bits) cannot be guessed; what a link allows is capped by the use case."""
    limit_request(scope, context().settings.link_rate_limit_ip)


def body() -> dict[str, Any]:
    found = request.get_json(silent=True)
    if not isinstance(found, dict):
        raise Problem(400, "bad-request", _("The body must be a JSON object."))
    return found


def load(schema: Schema, data: Any) -> dict[str, Any]:
    try:
        return schema.load(data)
    except ValidationError as exc:
        raise Problem(422, "validation-error", _("The request has invalid fields."),
                      title="Invalid request", errors=translated(exc.messages)) from None


def translated(messages: Any) -> dict[str, list[str]]:
    return {name: [_(m) for m in msgs] for name, msgs in flatten_errors(messages).items()}


def json_response(payload: dict[str, Any], status: int = 200):
    response = jsonify(payload)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


def page(template: str, status: int = 200, **values: Any):
    session = sessions.load_session(create=True)
    assert session is not None
    return render_template(template, lang=language(), csrf_token=session.csrf, _l=_,
                           ui_locales=language(), **values), status


def csrf_ok() -> bool:
    return sessions.csrf_valid(sessions.load_session(create=True), request.form.get("csrf_token"))
