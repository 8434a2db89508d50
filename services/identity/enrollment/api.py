"""JSON API of enrollment and activation, and the help desk's admin endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, jsonify, request
from marshmallow import ValidationError

from services.common import powers
from services.common.app import context
from services.common.errors import Problem
from services.common.fields import whole_number
from services.common.powers import require_power
from services.identity.scopes import HELPDESK

from . import activation, audit, service
from .codes import code_target
from .i18n import _
from .schemas import (
    SECURITY_QUESTIONS,
    ActivatedSchema,
    ActivationSchema,
    CredentialsSchema,
    EnrollmentCreatedSchema,
    EnrollmentSchema,
    EnrollmentViewSchema,
    VerifySchema,
    translated_errors,
)
from .web import anonymous, cfg, helpdesk, limit

bp = Blueprint("enrollment_api", __name__)

def _body() -> dict[str, Any]:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "bad-request", _("The body must be a JSON object."))
    return body


def load(schema, body: dict[str, Any]) -> dict[str, Any]:
    try:
        return schema.load(body)
    except ValidationError as exc:
        raise Problem(422, "validation-error", _("The request has invalid fields."),
                      title="Invalid request", errors=translated_errors(exc.messages)) from None


def _json(body: dict[str, Any], status: int = 200):
    response = jsonify(body)
    response.status_code = status
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/v1/enrollments")
def create_enrollment():
    body = _body()
    email = body.get("email") if isinstance(body.get("email"), str) else None
    limit("enroll", "enrollment_rate_limit_ip", "enrollment_rate_limit_target", email)
    data = load(EnrollmentSchema(), body)
    with context().db.transaction() as session:
        result = service.submit_enrollment(session, cfg(), data, anonymous())
    return _json(EnrollmentCreatedSchema().dump(result), 201)


@bp.post("/v1/enrollments/verify")
def verify_enrollment():
    body = _body()
    token = body.get("token") if isinstance(body.get("token"), str) else None
    limit("verify", "enrollment_rate_limit_ip", "activation_rate_limit_target", token)
    data = load(VerifySchema(), body)
    with context().db.transaction() as session:
        enrollment = service.verify_email(session, cfg(), data["token"], anonymous())
        result = {"enrollment_id": enrollment.id, "tracking_number": enrollment.tracking_number,
                  "status": enrollment.status.value}
    if result["status"] == service.S.EXPIRED:
        raise service.LinkInvalid()
    return _json(EnrollmentCreatedSchema().dump(result))


def refused() -> Problem:
    return Problem(400, "activation-refused", _(
        "The Access Code, PIN or Verification Word is not correct, or this enrollment cannot "
        "be activated now. After five failed attempts the enrollment is locked: contact the "
        "help desk."))


@bp.post("/v1/activation")
def activate():
    body = _body()
    code = body.get("access_code") if isinstance(body.get("access_code"), str) else None
    limit("activate", "activation_rate_limit_ip", "activation_rate_limit_target",
          code_target(code))
    data = load(ActivationSchema(), body)
    config = cfg()
    with context().db.transaction() as session:
        result = activation.activate(session, config, data["access_code"], data["pin"],
                                     data["verification_word"], anonymous())
    if result.outcome == activation.Outcome.EXPIRED:
        raise Problem(400, "access-code-expired", _(
            "Your Access Code has expired. Contact the help desk for a new one."))
    if result.outcome != activation.Outcome.OK:
        raise refused()
    return _json({"activation_token": result.ticket,
                  "expires_in": config.activation_ticket_minutes * 60})


def credentials_from(data: dict[str, Any]) -> activation.Credentials:
    return activation.Credentials(
        username=data["username"], password=data["password"],
        security_answers=[(q["question"], q["answer"]) for q in data["security_questions"]])


@bp.post("/v1/activation/credentials")
def set_credentials():
    body = _body()
    ticket = body.get("activation_token") if isinstance(body.get("activation_token"), str) else None
    limit("credentials", "activation_rate_limit_ip", "activation_rate_limit_target", ticket)
    data = load(CredentialsSchema(), body)
    with context().db.transaction() as session:
        done = activation.set_credentials(session, cfg(), ticket, credentials_from(data),
                                          anonymous())
    return _json(ActivatedSchema().dump(done), 201)


@bp.get("/v1/security-questions")
def security_questions():
    return jsonify(items=[{"key": k, "text": _(v)} for k, v in SECURITY_QUESTIONS.items()])


# --- help desk -------------------------------------------------------------------------


@bp.get("/admin/v1/enrollments/<enrollment_id>")
@require_power(powers.HELPDESK, scope=HELPDESK)
def read_enrollment(enrollment_id: str):
    with context().db.read() as session:
        return _json(EnrollmentViewSchema().dump(service.get_enrollment(session, enrollment_id)))


def _admin_action(use_case, enrollment_id: str):
    with context().db.transaction() as session:
        enrollment = use_case(session, cfg(), enrollment_id, helpdesk())
        body = EnrollmentViewSchema().dump(enrollment)
    return _json(body)


@bp.post("/admin/v1/enrollments/<enrollment_id>/access-code")
@require_power(powers.HELPDESK, scope=HELPDESK)
def reissue_access_code(enrollment_id: str):
    return _admin_action(service.reissue_access_code, enrollment_id)


@bp.post("/admin/v1/enrollments/<enrollment_id>/unlock")
@require_power(powers.HELPDESK, scope=HELPDESK)
def unlock(enrollment_id: str):
    return _admin_action(service.unlock_enrollment, enrollment_id)


@bp.post("/admin/v1/enrollments/<enrollment_id>/approve")
@require_power(powers.HELPDESK, scope=HELPDESK)
def approve(enrollment_id: str):
    return _admin_action(service.approve_review, enrollment_id)


def _when(name: str) -> datetime | None:
    raw = request.args.get(name)
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw)
    except ValueError:
        raise Problem(422, "validation-error", "Invalid query.",
                      errors={name: ["Use an ISO 8601 date-time."]}) from None


def _int(name: str, default: int | None) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return default
    value = whole_number(raw)
    if value is None:
        raise Problem(422, "validation-error", "Invalid query.",
                      errors={name: ["Use a whole number."]})
    return value


@bp.get("/admin/v1/audit")
@require_power(powers.HELPDESK, scope=HELPDESK)
def audit_log():
    """Newest first; ``before_id`` pages on."""
    q = audit.AuditQuery(
        subject_id=request.args.get("subject_id"),
        tracking_number=request.args.get("tracking_number"),
        action=request.args.get("action"), actor_id=request.args.get("actor_id"),
        since=_when("since"), until=_when("until"), before_id=_int("before_id", None),
        limit=_int("limit", 50) or 50)
    with context().db.read() as session:
        rows = [audit.as_dict(row) for row in audit.query(session, q)]
    return _json({"items": rows, "next_before_id": rows[-1]["id"] if rows else None})
