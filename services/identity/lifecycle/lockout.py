"""Lockout: ``LOCKOUT_THRESHOLD`` consecutive wrong passwords lock the user ID for
``LOCKOUT_MINUTES``; the help desk may unlock sooner.

An active user becomes ``locked`` (the state machine's state) until ``locked_until``; the
lock lifts by itself at the first login attempt after it. Wrong passwords for inactive or
disabled users are counted and locked too (``locked_until`` only, their status stays), so
no status can be guessed at without limit. While locked, every answer is the generic
refusal, right password or not: a lock must not become an oracle for the password.

Wrong passwords sent together (many replicas, PostgreSQL) are each counted: the count
goes up in SQL (``failed_logins + 1 ... RETURNING``), never read and written back, and
the row lock that statement takes orders the misses, so exactly one of them reaches the
threshold and locks; a miss that finds the account locked meanwhile is not counted.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, or_, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.identity.models import User, UserStatus

from .config import LifecycleConfig
from .domain import (
    SYSTEM,
    Actor,
    IllegalUserTransition,
    publish,
    record,
    security_of,
    transition,
)
from .models import UserSecurity


def security_row(session: Session, user_id: str) -> UserSecurity:
    """The user's security row, inserted first if missing (``ON CONFLICT DO NOTHING``):
    the first wrong passwords of a user, sent together, must not collide on inserting it."""
    row = session.get(UserSecurity, user_id)
    if row is not None:
        return row
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(dialect.insert(UserSecurity).values(user_id=user_id, failed_logins=0)
                    .on_conflict_do_nothing(index_elements=["user_id"]))
    found = session.get(UserSecurity, user_id)
    assert found is not None
    return found


def locked_until(sec: UserSecurity | None, now: datetime) -> datetime | None:
    until = sec.locked_until if sec else None
    return until if until is not None and until > now else None


def lift_expired_lock(session: Session, cfg: LifecycleConfig, user: User) -> None:
    """A ``locked`` user whose lock has run out is active again, with a fresh count."""
    sec = security_of(session, user.id)
    if user.status != UserStatus.LOCKED or locked_until(sec, cfg.now()) is not None:
        return
    # Several logins may find the same run-out lock. Take the security row (before the
    # user's, the order note_failure takes them in) and look again: only the first
    # restarts the count; a later one would wipe the misses counted since.
    session.refresh(sec, with_for_update=True)
    session.refresh(user)
    if user.status != UserStatus.LOCKED or locked_until(sec, cfg.now()) is not None:
        return
    transition(user, UserStatus.ACTIVE)
    sec.failed_logins = 0
    sec.locked_until = None
    record(session, cfg, "user.lock_expired", SYSTEM, user.id)


def note_failure(session: Session, cfg: LifecycleConfig, user: User,
                 reason: str = "bad_password") -> bool:
    """Count one wrong password (or, ``reason`` says, second factor); True when this one
    locked the user."""
    sec = security_row(session, user.id)
    now = cfg.now()
    attempt = session.execute(
        update(UserSecurity)
        .where(UserSecurity.user_id == user.id,
               or_(UserSecurity.locked_until.is_(None), UserSecurity.locked_until <= now))
        .values(failed_logins=func.coalesce(UserSecurity.failed_logins, 0) + 1)
        .returning(UserSecurity.failed_logins)
        .execution_options(synchronize_session=False)).scalar_one_or_none()
    if attempt is None:  # a concurrent miss locked the account after this one was judged
        record(session, cfg, "login.refused", SYSTEM, user.id, reason="locked")
        return False
    set_committed_value(sec, "failed_logins", attempt)
    record(session, cfg, "login.failed", SYSTEM, user.id, reason=reason, attempt=attempt)
    if attempt < cfg.lockout_threshold:
        return False
    # This transaction holds the row (the UPDATE above) until it commits: no other miss
    # is counted in between, so the lock below is taken once.
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
    """The failed-attempt counts restart (the person proved everything asked): one
    UPDATE that changes a row only when a count is not zero (no read: the login already
    read the row once, in ``judge``)."""
    # Written now, before the user's row (its last login) at commit: rows are taken in
    # the order note_failure takes them, so the two cannot deadlock.
    session.execute(update(UserSecurity)
                    .where(UserSecurity.user_id == user.id,
                           or_(UserSecurity.failed_logins != 0,
                               UserSecurity.failed_second_factors != 0))
                    .values(failed_logins=0, failed_second_factors=0)
                    .execution_options(synchronize_session=False))


def note_second_factor_failure(session: Session, cfg: LifecycleConfig, user: User) -> None:
    """A wrong second-factor code: it counts toward the temporary lock as a wrong password
    does, and toward :func:`second_factor_codes_blocked`, whose count only a completed
    sign-in, the help desk's unlock or a reset of the factors restarts. The lock alone
    would let someone who holds the password try a few codes every LOCKOUT_MINUTES for
    ever (and a password reset clears the lock); NIST SP 800-63B §5.2.2 caps consecutive
    failures at 100."""
    note_failure(session, cfg, user, reason="bad_second_factor")
    sec = security_row(session, user.id)
    count = session.execute(
        update(UserSecurity).where(UserSecurity.user_id == user.id)
        .values(failed_second_factors=func.coalesce(UserSecurity.failed_second_factors, 0) + 1)
        .returning(UserSecurity.failed_second_factors)
        .execution_options(synchronize_session=False)).scalar_one()
    set_committed_value(sec, "failed_second_factors", count)
    if count == cfg.second_factor_max_failures:  # exactly one request reaches it
        record(session, cfg, "second_factor.codes_blocked", SYSTEM, user.id, failures=count)


def second_factor_codes_blocked(sec: UserSecurity | None, cfg: LifecycleConfig) -> bool:
    """Whether the user's second-factor codes (app or recovery) are refused: too many
    wrong ones in a row. A passkey, which cannot be guessed, still signs in."""
    return sec is not None and (sec.failed_second_factors or 0) >= cfg.second_factor_max_failures


def restart_second_factor_count(session: Session, user_id: str) -> None:
    """The help desk lifted a lock or reset the factors: codes are accepted again."""
    session.execute(update(UserSecurity)
                    .where(UserSecurity.user_id == user_id,
                           UserSecurity.failed_second_factors != 0)
                    .values(failed_second_factors=0)
                    .execution_options(synchronize_session=False))


def unlock(session: Session, cfg: LifecycleConfig, user: User, actor: Actor,
           why: str) -> None:
    """Help desk: clear the lock and the counts (a ``locked`` user becomes active; blocked
    second-factor codes are accepted again)."""
    sec = security_of(session, user.id)
    was_locked = (user.status == UserStatus.LOCKED or locked_until(sec, cfg.now()) is not None
                  or second_factor_codes_blocked(sec, cfg))
    if not was_locked:
        raise IllegalUserTransition(user.status, UserStatus.ACTIVE)
    if user.status == UserStatus.LOCKED:
        transition(user, UserStatus.ACTIVE)
    sec.locked_until = None
    sec.failed_logins = 0
    sec.failed_second_factors = 0
    publish(session, cfg, "identity.user.unlocked", user,
            {"user_id": user.id, "actor_id": actor.id, "reason": why})
    record(session, cfg, "user.unlocked", actor, user.id, why=why)

