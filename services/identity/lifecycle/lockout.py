"""Lockout: ``LOCKOUT_THRESHOLD`` consecutive wrong passwords lock the user ID for
``LOCKOUT_MINUTES``; the help desk may unlock sooner.

An active user becomes ``locked`` (the state machine's state) until ``locked_until``; the
lock lifts by itself at the first login attempt after it. Wrong passwords for inactive or
disabled users are counted and locked too (``locked_until`` only, their status stays), so
no status can be guessed at without limit. While locked, every answer is the generic
refusal, right password or not: a lock must not become an oracle for the password.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from services.identity.models import User, UserStatus

from .config import LifecycleConfig
from .domain import (
    SYSTEM,
    Actor,
    IllegalUserTransition,
    aware,
    publish,
    record,
    security_of,
    transition,
)
from .models import UserSecurity


def locked_until(sec: UserSecurity | None, now: datetime) -> datetime | None:
    until = aware(sec.locked_until) if sec else None
    return until if until is not None and until > now else None


def lift_expired_lock(session: Session, cfg: LifecycleConfig, user: User) -> None:
    """A ``locked`` user whose lock has run out is active again, with a fresh count."""
    sec = security_of(session, user.id)
    if user.status == UserStatus.LOCKED and locked_until(sec, cfg.now()) is None:
        transition(user, UserStatus.ACTIVE)
        sec.failed_logins = 0
        sec.locked_until = None
        record(session, cfg, "user.lock_expired", SYSTEM, user.id)


def note_failure(session: Session, cfg: LifecycleConfig, user: User) -> bool:
    """Count one wrong password; True when this one locked the user."""
    sec = security_of(session, user.id)
    sec.failed_logins = (sec.failed_logins or 0) + 1
    record(session, cfg, "login.failed", SYSTEM, user.id, reason="bad_password",
           attempt=sec.failed_logins)
    if sec.failed_logins < cfg.lockout_threshold:
        return False
    sec.locked_until = cfg.now() + timedelta(minutes=cfg.lockout_minutes)
    sec.failed_logins = 0
    if user.status == UserStatus.ACTIVE:
        transition(user, UserStatus.LOCKED)
    publish(session, cfg, "identity.user.locked", user,
            {"user_id": user.id, "reason": "failed_logins"})
    record(session, cfg, "user.locked", SYSTEM, user.id, reason="failed_logins",
           until=sec.locked_until.isoformat())
    return True


def note_success(session: Session, user: User) -> None:
    sec = security_of(session, user.id)
    sec.failed_logins = 0


def unlock(session: Session, cfg: LifecycleConfig, user: User, actor: Actor,
           why: str) -> None:
    """Help desk: clear the lock and the count (a ``locked`` user becomes active)."""
    sec = security_of(session, user.id)
    was_locked = user.status == UserStatus.LOCKED or locked_until(sec, cfg.now()) is not None
    if not was_locked:
        raise IllegalUserTransition(user.status, UserStatus.ACTIVE)
    if user.status == UserStatus.LOCKED:
        transition(user, UserStatus.ACTIVE)
    sec.locked_until = None
    sec.failed_logins = 0
    publish(session, cfg, "identity.user.unlocked", user,
            {"user_id": user.id, "actor_id": actor.id, "reason": why})
    record(session, cfg, "user.unlocked", actor, user.id, why=why)

