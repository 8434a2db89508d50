"""Self-service recovery: forgot password (emailed link + a security question) and
forgot username (a reminder to the address on file).

Both requests answer the same whether or not an account matched; what happened is in
the audit log only. The reset link alone is never enough (the question must be answered)
and neither is the answer alone (it is asked only behind a live link). No Flask here.

The link is a single-use secret (services/common/single_use.py): claimed by a
conditional update before the password changes, so it works once under concurrency;
wrong answers are counted in SQL (``failed_answers + 1 ... RETURNING``), so answers sent
together still void it at the threshold.
"""

from __future__ import annotations

import enum
import random
from dataclasses import dataclass
from datetime import timedelta

import redis
from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.common import single_use, tracking_numbers
from services.common.domain_errors import DomainError
from services.identity.enrollment.codes import (
    new_token,
    token_digest,
)
from services.identity.models import User, UserStatus
from services.identity.security_answers import answer_matches, questions_answered

from .config import LifecycleConfig
from .credentials import replace_password
from .domain import Actor, person, publish, record
from .models import PasswordReset

# Who may reset: a temporary lock does not stop a reset; inactivity and disabling do
# (those go through the help desk).
CAN_RESET = (UserStatus.ACTIVE, UserStatus.LOCKED)
MAX_MATCHES = 5


class ResetLinkInvalid(DomainError):
    kind = "reset-link-invalid"

    def __init__(self) -> None:
        super().__init__("The reset link is not valid, was already used or has expired.")


def _matching_users(session: Session, username_or_email: str,
                    statuses: tuple[UserStatus, ...]) -> list[User]:
    value = username_or_email.strip()
    condition = User.username_key == User.key_for(value)
    if "@" in value:
        condition = or_(condition, func.lower(User.email) == value.lower())
    return list(session.scalars(select(User).where(condition, User.status.in_(statuses))
                                .order_by(User.id).limit(MAX_MATCHES)))


def request_password_reset(session: Session, cfg: LifecycleConfig, username_or_email: str,
                           actor: Actor) -> None:
    users = _matching_users(session, username_or_email, CAN_RESET)
    if not users:
        record(session, cfg, "password_reset.no_match", actor, None)
    for user in users:
        questions = questions_answered(session, user.id)
        if not questions:
            record(session, cfg, "password_reset.no_security_questions", actor, user.id)
            continue
        now = cfg.now()
        token = new_token()
        expires_at = now + timedelta(minutes=cfg.password_reset_ttl_minutes)
        reset = single_use.issue(session, PasswordReset(
            user_id=user.id, digest=token_digest(token),
            tracking_number=tracking_numbers.generate(),
            question=random.SystemRandom().choice(sorted(questions)), failed_answers=0,
            expires_at=expires_at), now)
        publish(session, cfg, "identity.password_reset.requested", user,
                {**person(user), "expires_at": expires_at.isoformat()},
                tracking_number=reset.tracking_number,
                sealed={"reset_url": f"{cfg.public_base_url}/reset-password?token={token}"})
        record(session, cfg, "password_reset.requested", actor, user.id,
               tracking_number=reset.tracking_number)


def live_reset(session: Session, cfg: LifecycleConfig, token: str | None) -> PasswordReset:
    """The unused, unexpired reset this link belongs to, or :class:`ResetLinkInvalid`."""
    reset = single_use.live(session, PasswordReset, token_digest(token),
                            cfg.now()) if token else None
    if reset is None:
        raise ResetLinkInvalid()
    user = session.get(User, reset.user_id)
    if user is None or user.status not in CAN_RESET:
        raise ResetLinkInvalid()
    return reset


@dataclass(frozen=True)
class ResetQuestion:
    question: str
    preferred_language: str
    expires_at: str


def question_for(session: Session, cfg: LifecycleConfig, token: str | None) -> ResetQuestion:
    reset = live_reset(session, cfg, token)
    user = session.get(User, reset.user_id)
    assert user is not None
    return ResetQuestion(reset.question, user.preferred_language,
                         reset.expires_at.isoformat())


def _count_wrong_answer(session: Session, reset: PasswordReset) -> int:
    """``failed_answers + 1`` in one statement: each of concurrent misses is counted."""
    attempt = session.execute(
        update(PasswordReset).where(PasswordReset.id == reset.id)
        .values(failed_answers=PasswordReset.failed_answers + 1)
        .returning(PasswordReset.failed_answers)
        .execution_options(synchronize_session=False)).scalar_one()
    set_committed_value(reset, "failed_answers", attempt)
    return attempt


class ResetOutcome(enum.StrEnum):
    DONE = "done"
    WRONG_ANSWER = "wrong_answer"  # the caller commits: the miss must count


def complete_password_reset(session: Session, cfg: LifecycleConfig, client: redis.Redis,
                            namespace: str, token: str | None, answer: str, password: str,
                            actor: Actor) -> ResetOutcome:
    """Answer the link's question and set the new password. Too many wrong answers void
    the link. Success ends every session and refresh token of the user."""
    reset = live_reset(session, cfg, token)
    user = session.get(User, reset.user_id)
    assert user is not None
    if not answer_matches(session, user.id, reset.question, answer):
        attempt = _count_wrong_answer(session, reset)
        voided = attempt >= cfg.password_reset_max_answers and single_use.void(
            session, reset, cfg.now())
        record(session, cfg, "password_reset.wrong_answer", actor, user.id,
               tracking_number=reset.tracking_number, attempt=attempt,
               link_voided=voided)
        return ResetOutcome.WRONG_ANSWER
    if not single_use.claim(session, reset, cfg.now()):
        raise ResetLinkInvalid()  # used or voided by a concurrent request
    ended = replace_password(session, cfg, client, namespace, user, password)
    publish(session, cfg, "identity.password.changed", user, {**person(user), "via": "reset"},
            tracking_number=reset.tracking_number)
    record(session, cfg, "password.changed", actor, user.id,
           tracking_number=reset.tracking_number, via="reset", **ended)
    return ResetOutcome.DONE


def request_username_reminder(session: Session, cfg: LifecycleConfig, email: str,
                              actor: Actor) -> None:
    """Send the username(s) registered with ``email`` to that address; nothing else."""
    users = list(session.scalars(select(User).where(
        func.lower(User.email) == email.strip().lower(),
        User.status != UserStatus.DISABLED).order_by(User.id).limit(MAX_MATCHES)))
    if not users:
        record(session, cfg, "username_reminder.no_match", actor, None)
    for user in users:
        publish(session, cfg, "identity.username.reminder", user, person(user),
                sealed={"username": user.username})
        record(session, cfg, "username_reminder.sent", actor, user.id)
