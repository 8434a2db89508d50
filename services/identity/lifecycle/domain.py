"""What every lifecycle use case shares: the user state machine, events, audit rows.

No Flask here. Functions run in the caller's transaction: state, outbox and audit rows
commit together.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.domain_errors import IllegalTransition, NotFound
from services.common.events import Envelope, Sealer, record_event
from services.identity import audit
from services.identity.enrollment.models import Enrollment
from services.identity.models import USER_TRANSITIONS, OutboxEvent, User, UserStatus

from .config import LifecycleConfig
from .models import UserProfile, UserSecurity

SOURCE = "identity"
Actor = audit.Actor
SYSTEM = audit.SYSTEM


class IllegalUserTransition(IllegalTransition):
    def __init__(self, current: UserStatus, wanted: UserStatus) -> None:
        super().__init__(f"The user is {current.value}; it cannot become {wanted.value}.",
                         status_now=current.value)


def transition(user: User, wanted: UserStatus) -> None:
    if wanted not in USER_TRANSITIONS[user.status]:
        raise IllegalUserTransition(user.status, wanted)
    user.status = wanted


def get_user(session: Session, user_id: str) -> User:
    user = session.get(User, user_id) if user_id else None
    if user is None:
        raise NotFound("No user has this id.")
    return user


def security_of(session: Session, user_id: str) -> UserSecurity:
    row = session.get(UserSecurity, user_id)
    if row is None:
        row = UserSecurity(user_id=user_id, failed_logins=0)
        session.add(row)
    return row


def profile_of(session: Session, user: User) -> UserProfile:
    """The user's profile row; its job title starts as the one given at enrollment."""
    row = session.get(UserProfile, user.id)
    if row is None:
        job_title = session.scalar(select(Enrollment.job_title).where(
            Enrollment.user_id == user.id))
        row = UserProfile(user_id=user.id, job_title=job_title, notify_status_changes=True)
        session.add(row)
    return row


def person(user: User) -> dict[str, Any]:
    return {"user_id": user.id, "email": user.email, "given_name": user.given_name,
            "preferred_language": user.preferred_language}


def publish(session: Session, cfg: LifecycleConfig, type_: str, user: User | None,
            data: dict[str, Any], *, tracking_number: str | None = None,
            sealed: dict[str, Any] | None = None, subject: str | None = None) -> Envelope:
    envelope = Envelope.new(
        type_, SOURCE, data, subject=subject or (user.id if user else None),
        company_id=user.company_id if user else None, tracking_number=tracking_number,
        occurred_at=cfg.now(), sealed=Sealer(cfg.sealing_key).seal(sealed) if sealed else None)
    return record_event(session, OutboxEvent, envelope)


def record(session: Session, cfg: LifecycleConfig, action: str, actor: Actor,
           user_id: str | None, *, tracking_number: str | None = None,
           **detail: Any) -> None:
    """An audit row about a user, stamped with the lifecycle clock."""
    row = audit.record(session, action, actor, subject_type="user", subject_id=user_id,
                       tracking_number=tracking_number, detail=detail)
    row.occurred_at = cfg.now()
