"""JSON API of enrollment and activation, and the help desk's admin endpoints.

The unauthenticated endpoints count every request (:func:`.web.limited`) before its body
is validated. Results are dumped after the unit of work: the help desk's reads use a
transaction, whose commit leaves the enrollment loaded for the response schema.
"""

from __future__ import annotations

from typing import Any

from services.common import powers
from services.common.app import context
from services.common.errors import Problem
from services.common.powers import require_power
from services.identity import audit
from services.identity.api.common import BEARER, ENROLLMENT, NO_STORE, Blueprint
from services.identity.i18n import _
from services.identity.scopes import HELPDESK
from services.identity.security_answers import QUESTIONS

from . import activation, service
from .codes import code_target
from .schemas import (
    ActivatedSchema,
    ActivationSchema,
    ActivationTicketSchema,
    AuditPageSchema,
    AuditQuerySchema,
    CredentialsSchema,
    EnrollmentCreatedSchema,
    EnrollmentSchema,
    EnrollmentViewSchema,
    SecurityQuestionsSchema,
    VerifySchema,
)
from .web import anonymous, cfg, credentials_from, helpdesk, limited

blp = Blueprint("enrollment_api", __name__, tag=ENROLLMENT, gettext=_)


@blp.post("/v1/enrollments")
@limited("enroll", "enrollment_rate_limit_ip", "enrollment_rate_limit_target", "email")
@blp.arguments(EnrollmentSchema)
@blp.response(201, EnrollmentCreatedSchema, description="Enrollment received")
@blp.problems(400, 429)
def create_enrollment(data: dict[str, Any]) -> Any:
    """Enroll: personal, company and account details, PIN and Word.

    A second enrollment with the email of a pending one answers the same way but stores
    nothing (no enumeration)."""
    with context().db.transaction() as session:
        return service.submit_enrollment(session, cfg(), data, anonymous()), NO_STORE


@blp.post("/v1/enrollments/verify")
@limited("verify", "enrollment_rate_limit_ip", "activation_rate_limit_target", "token")
@blp.arguments(VerifySchema)
@blp.response(200, EnrollmentCreatedSchema,
              description="Verified (status code_issued or in_review)")
@blp.problems(400, 429)
def verify_enrollment(data: dict[str, Any]) -> Any:
    """Redeem the single-use email verification link token."""
    with context().db.transaction() as session:
        enrollment = service.verify_email(session, cfg(), data["token"], anonymous())
        result = {"enrollment_id": enrollment.id, "tracking_number": enrollment.tracking_number,
                  "status": enrollment.status.value}
    if result["status"] == service.S.EXPIRED:
        raise service.LinkInvalid()
    return result, NO_STORE


def refused() -> Problem:
    return Problem(400, "activation-refused", _(
        "The Access Code, PIN or Verification Word is not correct, or this enrollment cannot "
        "be activated now. After five failed attempts the enrollment is locked: contact the "
        "help desk."))


@blp.post("/v1/activation")
@limited("activate", "activation_rate_limit_ip", "activation_rate_limit_target",
         "access_code", key=code_target)
@blp.arguments(ActivationSchema)
@blp.response(200, ActivationTicketSchema, description="Identity confirmed")
@blp.problems(400, 429)
def activate(data: dict[str, Any]) -> Any:
    """First login: Access Code + PIN + Word → a short-lived activation token."""
    config = cfg()
    with context().db.transaction() as session:
        result = activation.activate(session, config, data["access_code"], data["pin"],
                                     data["verification_word"], anonymous())
    if result.outcome == activation.Outcome.EXPIRED:
        raise Problem(400, "access-code-expired", _(
            "Your Access Code has expired. Contact the help desk for a new one."))
    if result.outcome != activation.Outcome.OK:
        raise refused()
    return {"activation_token": result.ticket,
            "expires_in": config.activation_ticket_minutes * 60}, NO_STORE


@blp.post("/v1/activation/credentials")
@limited("credentials", "activation_rate_limit_ip", "activation_rate_limit_target",
         "activation_token")
@blp.arguments(CredentialsSchema)
@blp.response(201, ActivatedSchema, description="User activated")
@blp.problems(400, 429)
def set_credentials(data: dict[str, Any]) -> Any:
    """Set username, password and three security questions; the user is active."""
    with context().db.transaction() as session:
        done = activation.set_credentials(session, cfg(), data["activation_token"],
                                          credentials_from(data), anonymous())
    return done, NO_STORE


@blp.get("/v1/security-questions")
@blp.response(200, SecurityQuestionsSchema)
def security_questions() -> dict[str, Any]:
    """The security questions a user may choose from."""
    return {"items": [{"key": k, "text": _(v)} for k, v in QUESTIONS.items()]}


# --- help desk -------------------------------------------------------------------------


@blp.get("/admin/v1/enrollments/<enrollment_id>")
@require_power(powers.HELPDESK, scope=HELPDESK)
@blp.response(200, EnrollmentViewSchema, description="The enrollment")
@blp.problems(401, 403, 404, 409)
@blp.doc(security=BEARER)
def read_enrollment(enrollment_id: str) -> Any:
    """Read an enrollment (help desk)."""
    with context().db.transaction() as session:
        return service.get_enrollment(session, enrollment_id), NO_STORE


def _admin_action(use_case, enrollment_id: str) -> Any:
    with context().db.transaction() as session:
        return use_case(session, cfg(), enrollment_id, helpdesk()), NO_STORE


@blp.post("/admin/v1/enrollments/<enrollment_id>/access-code")
@require_power(powers.HELPDESK, scope=HELPDESK)
@blp.response(200, EnrollmentViewSchema, description="The enrollment")
@blp.problems(401, 403, 404, 409)
@blp.doc(security=BEARER)
def reissue_access_code(enrollment_id: str) -> Any:
    """Re-issue the Access Code; the old one is void (help desk)."""
    return _admin_action(service.reissue_access_code, enrollment_id)


@blp.post("/admin/v1/enrollments/<enrollment_id>/unlock")
@require_power(powers.HELPDESK, scope=HELPDESK)
@blp.response(200, EnrollmentViewSchema, description="The enrollment")
@blp.problems(401, 403, 404, 409)
@blp.doc(security=BEARER)
def unlock(enrollment_id: str) -> Any:
    """Unlock a locked enrollment (help desk)."""
    return _admin_action(service.unlock_enrollment, enrollment_id)


@blp.post("/admin/v1/enrollments/<enrollment_id>/approve")
@require_power(powers.HELPDESK, scope=HELPDESK)
@blp.response(200, EnrollmentViewSchema, description="The enrollment")
@blp.problems(401, 403, 404, 409)
@blp.doc(security=BEARER)
def approve(enrollment_id: str) -> Any:
    """Approve an enrollment waiting for review (help desk)."""
    return _admin_action(service.approve_review, enrollment_id)


@blp.get("/admin/v1/audit")
@require_power(powers.HELPDESK, scope=HELPDESK)
@blp.arguments(AuditQuerySchema, location="query")
@blp.response(200, AuditPageSchema)
@blp.problems(401, 403)
@blp.doc(security=BEARER)
def audit_log(query: dict[str, Any]) -> Any:
    """The audit log, newest first (help desk); ``before_id`` pages on."""
    q = audit.AuditQuery(**{**query, "limit": query["limit"] or 50})
    with context().db.read() as session:
        rows = [audit.as_dict(row) for row in audit.query(session, q)]
    return {"items": rows, "next_before_id": rows[-1]["id"] if rows else None}, NO_STORE
