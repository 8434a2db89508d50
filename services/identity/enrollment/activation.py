"""First login: Access Code + PIN + Word, then username, password and security questions.

``activate`` never says which of the three secrets was wrong. Every miss against a known
code counts toward the enrollment's lock (``ACTIVATION_MAX_ATTEMPTS``); the per-IP rate
limit guards guesses of the code itself. A correct trio yields a short-lived ticket that
``set_credentials`` redeems; the code is consumed only when the user is created.

Concurrency (PostgreSQL, many replicas): the miss count goes up in SQL
(``failed_attempts + 1 ... RETURNING``) and the lock is a conditional update, so wrong
attempts sent together still lock at the threshold, once; the ticket and the code are
claimed by conditional updates before the user is created, so one ticket makes one user.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.common import single_use
from services.common.domain_errors import Conflict, DomainError, Invalid
from services.identity import audit
from services.identity.i18n import _
from services.identity.models import User
from services.identity.security_answers import record_answers
from services.identity.service import NewUser, create_user

from .codes import (
    access_code_digest,
    new_token,
    normalize_access_code,
    normalize_word,
    token_digest,
    verify_secret,
)
from .config import EnrollmentConfig
from .models import (
    ENROLLMENT_TRANSITIONS,
    AccessCode,
    Enrollment,
    EnrollmentStatus,
)
from .policy import check_new_password
from .service import IllegalTransition, _audit, _person, publish, transition

S = EnrollmentStatus


class Outcome(enum.StrEnum):
    OK = "ok"
    REFUSED = "refused"  # wrong code, PIN or Word, or a locked enrollment: never which
    EXPIRED = "expired"  # all three right, but the code has expired


@dataclass(frozen=True)
class ActivationResult:
    outcome: Outcome
    ticket: str | None = None
    enrollment_id: str | None = None
    locked_now: bool = False


class TicketInvalid(DomainError):
    kind = "activation-expired"

    def __init__(self) -> None:
        super().__init__("The activation has expired or is not valid: start again.")


def _active_code(session: Session, cfg: EnrollmentConfig, typed: str) -> AccessCode | None:
    if normalize_access_code(typed) is None:
        return None
    return single_use.unspent(session, AccessCode, access_code_digest(cfg.access_code_key, typed))


def _written(session: Session, statement) -> int:
    """Rows a conditional UPDATE changed (the ORM objects are set by the caller)."""
    result = session.execute(statement.execution_options(synchronize_session=False))
    return result.rowcount  # type: ignore[attr-defined]


def _count_miss(session: Session, enrollment: Enrollment) -> int:
    """``failed_attempts + 1`` in one statement: concurrent misses each get their own
    number (an ORM read-modify-write lost most of them)."""
    attempts = session.execute(
        update(Enrollment).where(Enrollment.id == enrollment.id)
        .values(failed_attempts=Enrollment.failed_attempts + 1)
        .returning(Enrollment.failed_attempts)
        .execution_options(synchronize_session=False)).scalar_one()
    set_committed_value(enrollment, "failed_attempts", attempts)
    return attempts


def _lock(session: Session, cfg: EnrollmentConfig, enrollment: Enrollment) -> bool:
    """Lock the enrollment unless a concurrent miss has (True: this call locked it)."""
    seen = enrollment.status
    if S.LOCKED not in ENROLLMENT_TRANSITIONS[seen]:
        raise IllegalTransition(seen, S.LOCKED)
    now = cfg.now()
    if _written(session, update(Enrollment).where(
            Enrollment.id == enrollment.id, Enrollment.status == seen).values(
            status=S.LOCKED, locked_at=now, activation_ticket_digest=None)) != 1:
        return False
    for name, value in (("status", S.LOCKED), ("locked_at", now),
                        ("activation_ticket_digest", None)):
        set_committed_value(enrollment, name, value)
    return True


def activate(session: Session, cfg: EnrollmentConfig, access_code: str, pin: str, word: str,
             actor: audit.Actor) -> ActivationResult:
    code = _active_code(session, cfg, access_code)
    enrollment = session.get(Enrollment, code.enrollment_id) if code else None
    # Two argon2 verifications on every path: timing tells nothing either.
    pin_ok = verify_secret(enrollment.pin_hash if enrollment else None, pin)
    word_ok = verify_secret(enrollment.word_hash if enrollment else None, normalize_word(word))
    if code is None or enrollment is None:
        audit.record(session, "activation.failed", actor, subject_type="enrollment",
                     subject_id=None, detail={"reason": "unknown_code"})
        return ActivationResult(Outcome.REFUSED)
    if enrollment.status not in (S.CODE_ISSUED, S.EXPIRED):
        _audit(session, "activation.refused", actor, enrollment, status=enrollment.status.value)
        return ActivationResult(Outcome.REFUSED, enrollment_id=enrollment.id)
    if not (pin_ok and word_ok):
        attempt = _count_miss(session, enrollment)
        _audit(session, "activation.failed", actor, enrollment, attempt=attempt)
        locked = attempt >= cfg.activation_max_attempts and _lock(session, cfg, enrollment)
        if locked:
            publish(session, cfg, "identity.enrollment.locked", enrollment, _person(enrollment))
            _audit(session, "enrollment.locked", actor, enrollment)
        return ActivationResult(Outcome.REFUSED, enrollment_id=enrollment.id, locked_now=locked)
    if code.expires_at <= cfg.now():
        if enrollment.status == S.CODE_ISSUED:
            transition(enrollment, S.EXPIRED)
        _audit(session, "activation.code_expired", actor, enrollment)
        return ActivationResult(Outcome.EXPIRED, enrollment_id=enrollment.id)
    ticket = new_token()
    enrollment.failed_attempts = 0
    enrollment.activation_ticket_digest = token_digest(ticket)
    enrollment.activation_ticket_expires_at = cfg.now() + timedelta(
        minutes=cfg.activation_ticket_minutes)
    _audit(session, "activation.identity_confirmed", actor, enrollment)
    return ActivationResult(Outcome.OK, ticket=ticket, enrollment_id=enrollment.id)


def enrollment_for_ticket(session: Session, cfg: EnrollmentConfig,
                          ticket: str | None) -> Enrollment:
    """The enrollment a live activation ticket belongs to, or :class:`TicketInvalid`."""
    enrollment = session.scalar(select(Enrollment).where(
        Enrollment.activation_ticket_digest == token_digest(ticket))) if ticket else None
    expires = enrollment.activation_ticket_expires_at if enrollment else None
    if enrollment is None or enrollment.status != S.CODE_ISSUED or expires is None or (
            expires <= cfg.now()):
        raise TicketInvalid()
    return enrollment


@dataclass(frozen=True)
class Activated:
    user_id: str
    username: str
    tracking_number: str


@dataclass(frozen=True)
class Credentials:
    username: str
    password: str
    security_answers: list[tuple[str, str]]  # (question key, answer)


def _claim_ticket_and_code(session: Session, enrollment: Enrollment, code: AccessCode,
                           now: datetime) -> bool:
    """Use up the activation ticket and the access code if they are still unused (two
    conditional updates); False if a concurrent request has."""
    ticket_claimed = _written(session, update(Enrollment).where(
        Enrollment.id == enrollment.id, Enrollment.status == S.CODE_ISSUED,
        Enrollment.activation_ticket_digest == enrollment.activation_ticket_digest,
    ).values(activation_ticket_digest=None)) == 1
    if not ticket_claimed or not single_use.claim(session, code, now):
        return False
    set_committed_value(enrollment, "activation_ticket_digest", None)
    return True


def set_credentials(session: Session, cfg: EnrollmentConfig, ticket: str | None,
                    credentials: Credentials, actor: audit.Actor) -> Activated:
    """Create the active user from the enrollment; consume the access code.

    The ticket and the code are claimed (conditional updates) before anything else is
    written: of several requests with one ticket, the first claims them and the others,
    once it commits, find nothing to claim (:class:`TicketInvalid`)."""
    enrollment = enrollment_for_ticket(session, cfg, ticket)
    now = cfg.now()
    code = single_use.latest_live(session, AccessCode, enrollment.id, now)
    if code is None or not _claim_ticket_and_code(session, enrollment, code, now):
        raise TicketInvalid()
    username = credentials.username.strip()
    problems = check_new_password(credentials.password, username, enrollment.email)
    errors: dict[str, list[str]] = {"password": problems} if problems else {}
    if session.scalar(select(User.id).where(User.username_key == User.key_for(username))):
        errors["username"] = [_("This username is taken. Choose another one.")]
    if errors:
        raise Invalid(errors)
    try:
        # A savepoint: another activation may take the name between the check above and
        # this insert (the unique index then refuses it, or create_user's own check).
        with session.begin_nested():
            user = create_user(session, NewUser(
                username=username, password=credentials.password, email=enrollment.email,
                given_name=enrollment.given_name, family_name=enrollment.family_name,
                company_id=enrollment.company_id, phone_number=enrollment.phone,
                preferred_language=enrollment.preferred_language, email_verified=True))
    except (IntegrityError, Conflict):
        raise Invalid({"username": [_("This username is taken. Choose another one.")]}) from None
    record_answers(session, user.id, credentials.security_answers)
    transition(enrollment, S.ACTIVATED)
    enrollment.activated_at = now
    enrollment.user_id = user.id
    publish(session, cfg, "identity.user.activated", enrollment, {
        "user_id": user.id, "enrollment_id": enrollment.id, "email": enrollment.email,
        "given_name": enrollment.given_name, "family_name": enrollment.family_name,
        "phone": enrollment.phone, "job_title": enrollment.job_title,
        "preferred_language": enrollment.preferred_language,
        "company_id": enrollment.company_id, "company_name": enrollment.company_name,
        "accounts": [{"last5": a.last5, "fingerprint": a.fingerprint}
                     for a in enrollment.accounts],
        "notifications": {"status_changes": True},
    }, subject=user.id)
    _audit(session, "user.activated", actor, enrollment, user_id=user.id)
    audit.record(session, "user.created", actor, subject_type="user", subject_id=user.id,
                 tracking_number=enrollment.tracking_number,
                 detail={"enrollment_id": enrollment.id, "username": user.username})
    return Activated(user.id, user.username, enrollment.tracking_number)
