"""Forgot password / forgot username: the JSON API (the pages: :mod:`.recovery_pages`).

Every request is counted before its body is validated; the answers to a reset or a
reminder are the same whether or not an account matched.
"""

from __future__ import annotations

from typing import Any

from services.common.app import context
from services.common.errors import Problem
from services.identity.api.common import LIFECYCLE, NO_STORE, Blueprint
from services.identity.i18n import _, prefer

from . import recovery
from .schemas import (
    DetailSchema,
    ResetCompleteSchema,
    ResetQuestionSchema,
    ResetRequestSchema,
    ResetTokenSchema,
    UsernameReminderSchema,
)
from .web import (
    PASSWORD_RESET,
    REMINDER_SENT,
    RESET_SENT,
    WRONG_ANSWER,
    anonymous,
    cfg,
    limited,
    link_limited,
    question_text,
)

blp = Blueprint("lifecycle_recovery_api", __name__, tag=LIFECYCLE, gettext=_)


@blp.post("/v1/password-resets")
@limited("reset", "username_or_email")
@blp.arguments(ResetRequestSchema)
@blp.response(202, DetailSchema)
@blp.problems(400, 429)
def create_password_reset(data: dict[str, Any]) -> Any:
    """Forgot password: email a single-use 30-minute link.

    A neutral answer (202) whether or not an account matched."""
    with context().db.transaction() as session:
        recovery.request_password_reset(session, cfg(), data["username_or_email"], anonymous())
    return {"detail": _(RESET_SENT)}, NO_STORE


@blp.post("/v1/password-resets/question")
@link_limited("reset-link")
@blp.arguments(ResetTokenSchema)
@blp.response(200, ResetQuestionSchema)
@blp.problems(400, 429)
def reset_question(data: dict[str, Any]) -> Any:
    """The security question behind a live reset link."""
    with context().db.read() as session:
        found = recovery.question_for(session, cfg(), data["token"])
    prefer(found.preferred_language)
    return {"question": found.question, "text": question_text(found.question),
            "expires_at": found.expires_at}, NO_STORE


@blp.post("/v1/password-resets/complete")
@link_limited("reset-link")
@blp.arguments(ResetCompleteSchema)
@blp.response(200, DetailSchema)
@blp.problems(400, 429)
def complete_password_reset(data: dict[str, Any]) -> Any:
    """Answer the question and set the new password (ends every session and refresh token)."""
    ctx = context()
    with ctx.db.transaction() as session:
        outcome = recovery.complete_password_reset(
            session, cfg(), ctx.redis, ctx.settings.redis_namespace, data["token"],
            data["answer"], data["password"], anonymous())
    if outcome == recovery.ResetOutcome.WRONG_ANSWER:
        raise Problem(400, "wrong-answer", _(WRONG_ANSWER),
                      errors={"answer": [_("The answer is not correct.")]})
    return {"detail": _(PASSWORD_RESET)}, NO_STORE


@blp.post("/v1/username-reminders")
@limited("username", "email")
@blp.arguments(UsernameReminderSchema)
@blp.response(202, DetailSchema)
@blp.problems(400, 429)
def create_username_reminder(data: dict[str, Any]) -> Any:
    """Forgot username: a reminder to the address on file (a neutral answer)."""
    with context().db.transaction() as session:
        recovery.request_username_reminder(session, cfg(), data["email"], anonymous())
    return {"detail": _(REMINDER_SENT)}, NO_STORE
