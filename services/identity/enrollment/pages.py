"""The HTML pages: enroll, verify the email, activate, set credentials (en/es)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, g, redirect, render_template, request, url_for
from marshmallow import ValidationError
from sqlalchemy import select

from services.common.app import context
from services.common.domain_errors import Invalid
from services.common.streams import key
from services.identity import sessions
from services.identity.factors.prompt_pages import first_sign_in
from services.identity.i18n import N_, _, current_language
from services.identity.ratelimit import TooManyRequests
from services.identity.security_answers import QUESTIONS
from services.identity.views.security import hardened

from . import activation, service
from .codes import code_target, token_digest
from .models import Enrollment
from .schemas import (
    ActivationSchema,
    CredentialsSchema,
    EnrollmentSchema,
    translated_errors,
)
from .web import anonymous, cfg, credentials_from, limit

bp = Blueprint("enrollment", __name__, template_folder="templates")

# Form field → dotted API field (the errors map is keyed by the latter).
FORM_FIELDS = {
    "given_name": "given_name", "family_name": "family_name", "email": "email",
    "phone": "phone", "job_title": "job_title", "preferred_language": "preferred_language",
    "company_name": "company.name", "tax_id": "company.tax_id",
    "address_line1": "company.address.line1", "address_line2": "company.address.line2",
    "city": "company.address.city", "region": "company.address.region",
    "postal_code": "company.address.postal_code", "country": "company.address.country",
    "pin": "pin", "verification_word": "verification_word",
}
DOTTED_TO_FORM = {v: k for k, v in FORM_FIELDS.items()}
SECRET_FIELDS = ("pin", "verification_word", "password", "password_confirm", "access_code")


def _login_session() -> sessions.LoginSession:
    found = sessions.load_session(create=True)
    assert found is not None  # create=True always gives one
    return found


def _page(template: str, status: int = 200, **values: Any):
    return render_template(template, lang=current_language(), csrf_token=_login_session().csrf,
                           ui_locales=current_language(), **values), status


def _csrf_ok() -> bool:
    return sessions.csrf_valid(_login_session(), request.form.get("csrf_token"))


def _expired_form(template: str, **values: Any):
    return _page(template, 400, form_error=_("The form expired. Please try again."), **values)


def _too_many(exc: TooManyRequests):
    response = _page("enrollment/message.html", 429, title=_("Too many attempts"),
                     message=_("Too many attempts. Try again later."))
    return response[0], 429, {"Retry-After": str(exc.retry_after)}


def _enrollment_body(form) -> dict[str, Any]:
    address = {k.split(".")[-1]: form.get(f, "").strip() or None for f, k in FORM_FIELDS.items()
               if k.startswith("company.address.")}
    for required in ("line1", "city", "postal_code", "country"):
        address[required] = address[required] or ""
    body: dict[str, Any] = {f: form.get(f, "") for f, k in FORM_FIELDS.items() if "." not in k}
    body["preferred_language"] = body["preferred_language"] or current_language()
    body["company"] = {"name": form.get("company_name", ""), "tax_id": form.get("tax_id", ""),
                       "address": address}
    body["account_numbers"] = [n for n in form.getlist("account_numbers") if n.strip()]
    return body


@bp.route("/enroll", methods=["GET", "POST"])
@hardened
def enroll():
    values: dict[str, Any] = {"account_numbers": ["", "", ""]}
    if request.method == "GET":
        return _page("enrollment/enroll.html", values=values, errors={})
    values = {k: v for k, v in request.form.items() if k not in SECRET_FIELDS}
    submitted = request.form.getlist("account_numbers")
    values["account_numbers"] = submitted + [""] * max(0, 3 - len(submitted))
    if not _csrf_ok():
        return _expired_form("enrollment/enroll.html", values=values, errors={})
    body = _enrollment_body(request.form)
    try:
        limit("enroll", "enrollment_rate_limit_ip", "enrollment_rate_limit_target",
              body["email"])
        data = EnrollmentSchema().load(body)
    except TooManyRequests as exc:
        return _too_many(exc)
    except ValidationError as exc:
        errors = {DOTTED_TO_FORM.get(name, name): msgs
                  for name, msgs in translated_errors(exc.messages).items()}
        if "account_numbers" in errors and not body["account_numbers"]:
            errors["account_numbers.0"] = errors.pop("account_numbers")
        return _page("enrollment/enroll.html", 422, values=values, errors=errors)
    with context().db.transaction() as session:
        result = service.submit_enrollment(session, cfg(), data, anonymous())
    return _page("enrollment/enrolled.html", 201, tracking_number=result.tracking_number,
                 email=data["email"])


@bp.route("/enroll/verify", methods=["GET", "POST"])
@hardened
def verify():
    token = request.values.get("token", "")[:100]
    if request.method == "GET":
        with context().db.read() as session:
            found = session.scalar(select(Enrollment.preferred_language).where(
                Enrollment.verification_digest == token_digest(token))) if token else None
        g.preferred_language = found
        return _page("enrollment/verify.html", token=token)
    if not _csrf_ok():
        return _expired_form("enrollment/verify.html", token=token)
    try:
        limit("verify", "enrollment_rate_limit_ip", "activation_rate_limit_target", token)
        with context().db.transaction() as session:
            enrollment = service.verify_email(session, cfg(), token, anonymous())
            status, tracking = enrollment.status, enrollment.tracking_number
            g.preferred_language = enrollment.preferred_language
    except TooManyRequests as exc:
        return _too_many(exc)
    except service.LinkInvalid:
        return _page("enrollment/message.html", 400, title=_("This link cannot be used"),
                     message=_("The verification link is not valid, was already used or has "
                               "expired. If your enrollment expired, enroll again."))
    if status == service.S.EXPIRED:
        return _page("enrollment/message.html", 400, title=_("This link cannot be used"),
                     message=_("The verification link has expired. Please enroll again."))
    return _page("enrollment/verified.html", in_review=status == service.S.IN_REVIEW,
                 tracking_number=tracking)


def _ticket_key(sid: str) -> str:
    return key(context().settings.redis_namespace, "activation", sid)


REFUSED = N_("The Access Code, PIN or Verification Word is not correct, or this enrollment "
           "cannot be activated now. After five failed attempts the enrollment is locked: "
           "contact the help desk.")


@bp.route("/activate", methods=["GET", "POST"])
@hardened
def activate():
    if request.method == "GET":
        return _page("enrollment/activate.html", errors={})
    if not _csrf_ok():
        return _expired_form("enrollment/activate.html", errors={})
    try:
        limit("activate", "activation_rate_limit_ip", "activation_rate_limit_target",
              code_target(request.form.get("access_code", "")[:64]))
        data = ActivationSchema().load(request.form.to_dict())
    except TooManyRequests as exc:
        return _too_many(exc)
    except ValidationError as exc:
        return _page("enrollment/activate.html", 422, errors=translated_errors(exc.messages))
    config = cfg()
    with context().db.transaction() as session:
        result = activation.activate(session, config, data["access_code"], data["pin"],
                                     data["verification_word"], anonymous())
    if result.outcome == activation.Outcome.EXPIRED:
        return _page("enrollment/activate.html", 400, errors={}, form_error=_(
            "Your Access Code has expired. Contact the help desk for a new one."))
    if result.outcome != activation.Outcome.OK:
        return _page("enrollment/activate.html", 400, errors={}, form_error=_(REFUSED))
    context().redis.set(_ticket_key(_login_session().sid), result.ticket or "",
                        ex=config.activation_ticket_minutes * 60)
    return redirect(url_for("enrollment.credentials", ui_locales=current_language()), 303)


def _questions() -> list[tuple[str, str]]:
    return [(k, _(v)) for k, v in QUESTIONS.items()]


def _credentials_body(form) -> dict[str, Any]:
    return {"username": form.get("username", ""), "password": form.get("password", ""),
            "password_confirm": form.get("password_confirm", ""),
            "security_questions": [{"question": form.get(f"question_{i}", ""),
                                    "answer": form.get(f"answer_{i}", "")} for i in (1, 2, 3)]}


def _form_errors(errors: dict[str, list[str]]) -> dict[str, list[str]]:
    """``security_questions.0.answer`` → ``answer_1`` (the form's field names)."""
    mapped: dict[str, list[str]] = {}
    for name, msgs in errors.items():
        parts = name.split(".")
        if parts[0] == "security_questions" and len(parts) == 3 and parts[1].isdigit():
            name = f"{parts[2]}_{int(parts[1]) + 1}"
        elif parts[0] == "security_questions":
            name = "question_1"
        mapped.setdefault(name, []).extend(msgs)
    return mapped


@bp.route("/activate/credentials", methods=["GET", "POST"])
@hardened
def credentials():
    sid = _login_session().sid
    raw = context().redis.get(_ticket_key(sid))
    ticket = raw.decode() if isinstance(raw, bytes) else raw
    if not ticket:
        return redirect(url_for("enrollment.activate", ui_locales=current_language()), 303)
    values = {k: v for k, v in request.form.items() if k not in SECRET_FIELDS
              and not k.startswith("answer_")}
    if request.method == "GET":
        return _page("enrollment/credentials.html", errors={}, values={},
                     questions=_questions())
    if not _csrf_ok():
        return _expired_form("enrollment/credentials.html", errors={}, values=values,
                             questions=_questions())
    try:
        limit("credentials", "activation_rate_limit_ip", "activation_rate_limit_target", ticket)
        data = CredentialsSchema().load(_credentials_body(request.form))
        with context().db.transaction() as db_session:
            done = activation.set_credentials(db_session, cfg(), ticket,
                                              credentials_from(data), anonymous())
    except TooManyRequests as exc:
        return _too_many(exc)
    except ValidationError as exc:
        return _page("enrollment/credentials.html", 422, values=values, questions=_questions(),
                     errors=_form_errors(translated_errors(exc.messages)))
    except activation.TicketInvalid:
        context().redis.delete(_ticket_key(sid))
        return redirect(url_for("enrollment.activate", ui_locales=current_language()), 303)
    except Invalid as refused:
        return _page("enrollment/credentials.html", 422, values=values, questions=_questions(),
                     errors=_form_errors(refused.errors or {}))
    context().redis.delete(_ticket_key(sid))
    enrol = first_sign_in(done.user_id, url_for("lifecycle_profile.account"))
    return _page("enrollment/activated.html", 201, username=done.username,
                 tracking_number=done.tracking_number, enrol_url=enrol)
