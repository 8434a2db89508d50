"""The lifecycle's part of a password login: lockout, then inactivity (DESIGN.md §5.4–5).

``services.identity.service.authenticate`` calls :func:`judge` after its one argon2
verification. The configuration (thresholds, periods, the clock) comes from the caller
or, for the login page whose view predates this package, from :data:`CURRENT`, which
the lifecycle's wrapper of that view sets. :data:`REFUSAL` tells the wrapper why a login
was refused, so that an inactive user (who gave the right password) sees the help-desk
message while every other refusal stays the one generic answer.
"""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.identity.models import User, UserStatus

from . import inactivity, lockout
from .config import LifecycleConfig
from .domain import SYSTEM, record


@dataclass(frozen=True)
class Refusal:
    reason: str
    preferred_language: str | None = None
    inactivity_days: int | None = None


CURRENT: ContextVar[LifecycleConfig | None] = ContextVar("lifecycle_config", default=None)
REFUSAL: ContextVar[Refusal | None] = ContextVar("lifecycle_refusal", default=None)


def current_config() -> LifecycleConfig:
    return CURRENT.get() or LifecycleConfig()


def judge(session: Session, cfg: LifecycleConfig, user: User | None,
          password_matches: bool) -> str | None:
    """Why this login is refused (``None``: it may proceed). Records what it decides."""
    reason = _judge(session, cfg, user, password_matches)
    if reason is None or user is None:
        REFUSAL.set(None if reason is None else Refusal(reason))
    else:
        REFUSAL.set(Refusal(reason, user.preferred_language,
                            inactivity.period_days(session, cfg, user.company_id)))
    return reason


def _judge(session: Session, cfg: LifecycleConfig, user: User | None,
           matches: bool) -> str | None:
    if user is None:
        record(session, cfg, "login.failed", SYSTEM, None, reason="unknown_user")
        return "bad-credentials"
    # Held for the whole judgement: the session's identity map keeps only objects someone
    # references, so each rule's own ``security_of`` reloaded the row (three SELECTs).
    security = lockout.security_row(session, user.id)
    if lockout.locked_until(security, cfg.now()) is not None:
        record(session, cfg, "login.refused", SYSTEM, user.id, reason="locked")
        return "locked"
    lockout.lift_expired_lock(session, cfg, user)
    if not matches:
        lockout.note_failure(session, cfg, user)
        return "bad-credentials"
    lockout.note_success(session, user)
    if user.status == UserStatus.ACTIVE and inactivity.enforce_at_login(session, cfg, user):
        return "inactive"
    if user.status != UserStatus.ACTIVE:
        record(session, cfg, "login.refused", SYSTEM, user.id, reason=user.status.value)
        return user.status.value
    user.last_login_at = cfg.now()
    record(session, cfg, "login.succeeded", SYSTEM, user.id)
    return None
