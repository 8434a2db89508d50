"""The lifecycle's part of a password login: lockout, then inactivity (DESIGN.md §5.4–5).

``services.identity.service.authenticate`` calls :func:`judge` after its one argon2
verification, with the lifecycle configuration its caller passes in (the login page:
the app's, built once).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from services.identity.login_outcome import LoginOutcome
from services.identity.models import User, UserStatus

from . import inactivity, lockout
from .config import LifecycleConfig
from .domain import SYSTEM, record

# A user who gave the right password but whose status forbids a login.
_REFUSED_STATUS = {UserStatus.INACTIVE: LoginOutcome.INACTIVE,
                   UserStatus.LOCKED: LoginOutcome.LOCKED,
                   UserStatus.DISABLED: LoginOutcome.DISABLED}


def judge(session: Session, cfg: LifecycleConfig, user: User | None,
          password_matches: bool) -> LoginOutcome:
    """What this login comes to; records what it decides (audit rows, the failed-attempt
    count, a lock or a deactivation with their events) in ``session``."""
    if user is None:
        record(session, cfg, "login.failed", SYSTEM, None, reason="unknown_user")
        return LoginOutcome.BAD_CREDENTIALS
    # Held for the whole judgement: the session's identity map keeps only objects someone
    # references, so each rule's own ``security_of`` reloaded the row (three SELECTs).
    security = lockout.security_row(session, user.id)
    if lockout.locked_until(security, cfg.now()) is not None:
        record(session, cfg, "login.refused", SYSTEM, user.id, reason="locked")
        return LoginOutcome.LOCKED
    lockout.lift_expired_lock(session, cfg, user)
    if not password_matches:
        lockout.note_failure(session, cfg, user)
        return LoginOutcome.BAD_CREDENTIALS
    if user.status == UserStatus.ACTIVE and inactivity.enforce_at_login(session, cfg, user):
        return LoginOutcome.INACTIVE
    if user.status != UserStatus.ACTIVE:
        record(session, cfg, "login.refused", SYSTEM, user.id, reason=user.status.value)
        return _REFUSED_STATUS[user.status]
    return LoginOutcome.SIGNED_IN


def complete_sign_in(session: Session, cfg: LifecycleConfig, user: User) -> None:
    """The person proved everything asked of them (the password, and the second factor
    when they have one): the failed-attempt count restarts, the login counts against
    inactivity and is audited. A correct password alone, with a second step still owed,
    does none of this, or re-typing it would reset the count that guards the codes."""
    lockout.note_success(session, user)
    user.last_login_at = cfg.now()
    record(session, cfg, "login.succeeded", SYSTEM, user.id)
