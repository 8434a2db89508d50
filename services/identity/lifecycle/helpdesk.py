"""The help desk's actions on users: search, reactivate, unlock, disable, re-issue an
access code, remind a username.

Every action needs a ``why``; it is audited (who, what, when, why) and published as
``identity.helpdesk.action`` besides the action's own event. No Flask here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import redis
from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.identity.enrollment import service as enrollment_service
from services.identity.enrollment.config import EnrollmentConfig
from services.identity.enrollment.models import Enrollment
from services.identity.models import Company, User, UserStatus

from . import lockout
from .config import LifecycleConfig
from .domain import (
    Actor,
    IllegalUserTransition,
    get_user,
    person,
    publish,
    record,
    security_of,
    transition,
)
from .models import UserSecurity
from .revocation import sign_out_everywhere


@dataclass(frozen=True)
class UserQuery:
    q: str | None = None
    email: str | None = None
    company_id: str | None = None
    company: str | None = None
    status: str | None = None
    limit: int = 50


def _contains(column, text: str):
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return func.lower(column).like(f"%{escaped}%", escape="\\")


def search(session: Session, query: UserQuery) -> list[tuple[User, str | None]]:
    """Users matching every given criterion, with their company's name; by family name."""
    stmt = (select(User, Company.name).outerjoin(Company, Company.id == User.company_id)
            .order_by(User.family_name, User.given_name, User.id)
            .limit(max(1, min(query.limit, 200))))
    if query.q:
        words = query.q.split()[:5]
        for word in words:
            stmt = stmt.where(or_(_contains(User.given_name, word),
                                  _contains(User.family_name, word),
                                  _contains(User.email, word), _contains(User.username, word)))
    if query.email:
        stmt = stmt.where(func.lower(User.email) == query.email.strip().lower())
    if query.company_id:
        stmt = stmt.where(User.company_id == query.company_id)
    if query.company:
        stmt = stmt.where(_contains(Company.name, query.company))
    if query.status:
        stmt = stmt.where(User.status == UserStatus(query.status))
    return [(user, company) for user, company in session.execute(stmt).all()]


def user_view(session: Session, cfg: LifecycleConfig, user: User,
              company_name: str | None = None) -> dict[str, Any]:
    sec = session.get(UserSecurity, user.id)
    if company_name is None and user.company_id:
        company_name = session.scalar(select(Company.name).where(Company.id == user.company_id))
    return {"id": user.id, "username": user.username, "given_name": user.given_name,
            "family_name": user.family_name, "email": user.email,
            "company_id": user.company_id, "company_name": company_name,
            "status": user.status.value, "locked_until": lockout.locked_until(sec, cfg.now()),
            "failed_logins": sec.failed_logins if sec else 0,
            "second_factor_codes_blocked": lockout.second_factor_codes_blocked(sec, cfg),
            "last_login_at": user.last_login_at, "created_at": user.created_at}


def acted(session: Session, cfg: LifecycleConfig, user: User | None, actor: Actor,
          action: str, why: str, *, tracking_number: str | None = None,
          subject_id: str | None = None, **detail: Any) -> None:
    """What every help-desk action records besides its own event: the audit row
    ``helpdesk.<action>`` and the event ``identity.helpdesk.action`` (who, what, why)."""
    record(session, cfg, f"helpdesk.{action}", actor, user.id if user else subject_id,
           tracking_number=tracking_number, why=why, **detail)
    publish(session, cfg, "identity.helpdesk.action", user,
            {"actor_id": actor.id, "action": action, "why": why, **detail},
            tracking_number=tracking_number, subject=user.id if user else subject_id)


def reactivate(session: Session, cfg: LifecycleConfig, user_id: str, actor: Actor,
               why: str) -> str:
    """An inactive user may log in again; the inactivity period starts now. Returns the
    reactivation's tracking number."""
    user = get_user(session, user_id)
    if user.status != UserStatus.INACTIVE:
        raise IllegalUserTransition(user.status, UserStatus.ACTIVE)
    transition(user, UserStatus.ACTIVE)
    sec = security_of(session, user.id)
    sec.reactivated_at = cfg.now()
    sec.failed_logins = 0
    tracking = tracking_numbers.generate()
    publish(session, cfg, "identity.user.reactivated", user,
            {**person(user), "actor_id": actor.id}, tracking_number=tracking)
    acted(session, cfg, user, actor, "reactivate", why, tracking_number=tracking)
    return tracking


def unlock(session: Session, cfg: LifecycleConfig, user_id: str, actor: Actor,
           why: str) -> None:
    user = get_user(session, user_id)
    lockout.unlock(session, cfg, user, actor, why)
    acted(session, cfg, user, actor, "unlock", why)


def disable(session: Session, cfg: LifecycleConfig, client: redis.Redis, namespace: str,
            user_id: str, actor: Actor, why: str) -> None:
    """The user can no longer log in; every session and refresh token of theirs ends."""
    user = get_user(session, user_id)
    transition(user, UserStatus.DISABLED)
    ended = sign_out_everywhere(session, client, namespace, user.id)
    publish(session, cfg, "identity.user.disabled", user,
            {"user_id": user.id, "actor_id": actor.id, "reason": why})
    publish(session, cfg, "identity.user.deactivated", user,
            {**person(user), "reason": "helpdesk"})
    acted(session, cfg, user, actor, "disable", why, **ended)


def remind_username(session: Session, cfg: LifecycleConfig, user_id: str, actor: Actor,
                    why: str) -> None:
    """Email the user their username, to the address on file only."""
    user = get_user(session, user_id)
    publish(session, cfg, "identity.username.reminder", user, person(user),
            sealed={"username": user.username})
    acted(session, cfg, user, actor, "username_reminder", why)


def reissue_access_code(session: Session, cfg: LifecycleConfig, enrollment_cfg: EnrollmentConfig,
                        enrollment_id: str, actor: Actor, why: str) -> Enrollment:
    """Delegates to enrollment's re-issue (new code, old one void), adding the why."""
    enrollment = enrollment_service.reissue_access_code(session, enrollment_cfg, enrollment_id,
                                                        actor)
    acted(session, cfg, None, actor, "reissue_access_code", why,
           tracking_number=enrollment.tracking_number, subject_id=enrollment.user_id,
           enrollment_id=enrollment.id)
    return enrollment
