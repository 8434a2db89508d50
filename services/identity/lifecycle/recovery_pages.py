"""Forgot password / forgot username: the pages (en/es; the JSON API: :mod:`.recovery_api`)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from marshmallow import ValidationError

from services.common.app import context
from services.common.domain_errors import Invalid
from services.identity.i18n import N_, _, prefer
from services.identity.ratelimit import TooManyRequests
from services.identity.views.security import hardened

from . import recovery
from .schemas import ResetCompleteSchema, ResetRequestSchema, UsernameReminderSchema
from .web import (
    PASSWORD_RESET,
    REMINDER_SENT,
    RESET_SENT,
    WRONG_ANSWER,
    anonymous,
    cfg,
    csrf_ok,
    limit,
    limit_link,
    page,
    question_text,
    too_many_page,
    translated,
)

bp = Blueprint("lifecycle_recovery", __name__)

LINK_INVALID = N_("The reset link is not valid, was already used or has expired. Ask for a "
                  "new one.")


def _expired(template: str, **values: Any):
    return page(template, 400, form_error=_("The form expired. Please try again."), **values)


@bp.route("/forgot-password", methods=["GET", "POST"])
@hardened
def forgot_password():
    if request.method == "GET":
        return page("lifecycle/forgot_password.html", errors={}, values={})
    values = {"username_or_email": request.form.get("username_or_email", "")[:320]}
    if not csrf_ok():
        return _expired("lifecycle/forgot_password.html", errors={}, values=values)
    try:
        limit("reset", values["username_or_email"])
        wanted = ResetRequestSchema().load(values)["username_or_email"]
    except TooManyRequests as exc:
        return too_many_page(exc)
    except ValidationError as exc:
        return page("lifecycle/forgot_password.html", 422, values=values,
                    errors=translated(exc.messages))
    with context().db.transaction() as session:
        recovery.request_password_reset(session, cfg(), wanted, anonymous())
    return page("lifecycle/message.html", 202, title=_("Check your email"),
                message=_(RESET_SENT))


@bp.route("/reset-password", methods=["GET", "POST"])
@hardened
def reset_password():
    token = request.values.get("token", "")[:100]
    try:
        limit_link("reset-link")
        with context().db.read() as session:
            found = recovery.question_for(session, cfg(), token)
    except TooManyRequests as exc:
        return too_many_page(exc)
    except recovery.ResetLinkInvalid:
        return page("lifecycle/message.html", 400, title=_("This link cannot be used"),
                    message=_(LINK_INVALID))
    prefer(found.preferred_language)
    values = {"token": token, "question_text": question_text(found.question)}
    if request.method == "GET":
        return page("lifecycle/reset_password.html", errors={}, **values)
    if not csrf_ok():
        return _expired("lifecycle/reset_password.html", errors={}, **values)
    form = {k: request.form.get(k, "") for k in ("answer", "password", "password_confirm")}
    try:
        loaded = ResetCompleteSchema().load({"token": token, **form})
        ctx = context()
        with ctx.db.transaction() as session:
            outcome = recovery.complete_password_reset(
                session, cfg(), ctx.redis, ctx.settings.redis_namespace, token,
                loaded["answer"], loaded["password"], anonymous())
    except ValidationError as exc:
        return page("lifecycle/reset_password.html", 422, errors=translated(exc.messages),
                    **values)
    except recovery.ResetLinkInvalid:
        return page("lifecycle/message.html", 400, title=_("This link cannot be used"),
                    message=_(LINK_INVALID))
    except Invalid as refused:
        return page("lifecycle/reset_password.html", 422, errors=refused.errors or {},
                    **values)
    if outcome == recovery.ResetOutcome.WRONG_ANSWER:
        return page("lifecycle/reset_password.html", 400, errors={},
                    form_error=_(WRONG_ANSWER), **values)
    return page("lifecycle/message.html", title=_("Password changed"),
                message=_(PASSWORD_RESET), login=True)


@bp.route("/forgot-username", methods=["GET", "POST"])
@hardened
def forgot_username():
    if request.method == "GET":
        return page("lifecycle/forgot_username.html", errors={}, values={})
    values = {"email": request.form.get("email", "")[:320]}
    if not csrf_ok():
        return _expired("lifecycle/forgot_username.html", errors={}, values=values)
    try:
        limit("username", values["email"])
        email = UsernameReminderSchema().load(values)["email"]
    except TooManyRequests as exc:
        return too_many_page(exc)
    except ValidationError as exc:
        return page("lifecycle/forgot_username.html", 422, values=values,
                    errors=translated(exc.messages))
    with context().db.transaction() as session:
        recovery.request_username_reminder(session, cfg(), email, anonymous())
    return page("lifecycle/message.html", 202, title=_("Check your email"),
                message=_(REMINDER_SENT))
