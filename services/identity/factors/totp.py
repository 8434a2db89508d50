"""TOTP (RFC 6238, pyotp): enrol with an authenticator app, confirm with a first code,
prove a login's second step, remove.

* An enrolment counts as a factor only once confirmed with a first code.
* A code is good for its 30-second step and the steps either side (clock drift).
* A code is accepted once: ``last_used_step`` moves forward in one conditional
  ``UPDATE … WHERE last_used_step < :step``, so a replayed code (or two requests racing
  with one code) finds the step taken and is refused.
* A wrong code at login counts toward the account's lockout like a wrong password.
* The seed is Fernet-encrypted at rest and seen in clear only while enrolling.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass

import pyotp
from sqlalchemy import delete, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.common.domain_errors import Conflict, Invalid, NotFound
from services.identity.lifecycle import lockout
from services.identity.lifecycle.domain import Actor
from services.identity.models import User

from . import held, recovery_codes
from .config import FactorsConfig
from .events import factor_changed
from .models import TotpFactor

STEP_SECONDS = 30
WINDOW = 1  # steps accepted either side of the current one
WRONG_CODE = "The code is not correct. Type the code your app shows now."


@dataclass(frozen=True)
class Enrolment:
    """What the user needs to add the account to an app (shown while enrolling only)."""

    secret: str
    provisioning_uri: str


def _factor(session: Session, user_id: str) -> TotpFactor | None:
    return session.get(TotpFactor, user_id)


def confirmed(session: Session, user_id: str) -> bool:
    return held.has_totp(session, user_id)


def _enrolment(cfg: FactorsConfig, user: User, secret: str) -> Enrolment:
    uri = pyotp.TOTP(secret).provisioning_uri(name=user.username, issuer_name=cfg.issuer_name)
    return Enrolment(secret=secret, provisioning_uri=uri)


def begin_enrolment(session: Session, cfg: FactorsConfig, user: User) -> Enrolment:
    """A new secret for ``user``, not counting until :func:`confirm`; an enrolment left
    unconfirmed is replaced. Refused (Conflict) when the user has a confirmed one."""
    factor = _factor(session, user.id)
    if factor is not None and factor.confirmed_at is not None:
        raise Conflict("An authenticator app is set up already; remove it first.",
                       kind="totp-exists")
    secret = pyotp.random_base32()
    sealed = cfg.cipher.encrypt(secret.encode()).decode()
    if factor is None:
        session.add(TotpFactor(user_id=user.id, secret_encrypted=sealed, created_at=cfg.now(),
                               last_used_step=0))
    else:
        factor.secret_encrypted = sealed
        factor.created_at = cfg.now()
    return _enrolment(cfg, user, secret)


def pending_enrolment(session: Session, cfg: FactorsConfig, user: User) -> Enrolment | None:
    """The enrolment begun and not yet confirmed, to show again (None if there is none)."""
    factor = _factor(session, user.id)
    if factor is None or factor.confirmed_at is not None:
        return None
    return _enrolment(cfg, user, cfg.cipher.decrypt(factor.secret_encrypted.encode()).decode())


def _matching_step(cfg: FactorsConfig, factor: TotpFactor, code: str) -> int | None:
    """The time step, within the window, whose code is ``code``."""
    code = "".join(code.split())
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(cfg.cipher.decrypt(factor.secret_encrypted.encode()).decode())
    now_step = int(cfg.now().timestamp()) // STEP_SECONDS
    for step in range(now_step - WINDOW, now_step + WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _take_step(session: Session, cfg: FactorsConfig, factor: TotpFactor, step: int, *,
               confirming: bool) -> bool:
    """Record ``step`` as used if no later or equal step was (and, ``confirming``, mark
    the factor confirmed in the same statement): whether this call did."""
    table = TotpFactor
    state = table.confirmed_at.is_(None) if confirming else table.confirmed_at.is_not(None)
    values: dict[str, object] = {"last_used_step": step}
    if confirming:
        values["confirmed_at"] = cfg.now()
    taken = session.execute(
        update(table).where(table.user_id == factor.user_id, table.last_used_step < step, state)
        .values(values).execution_options(synchronize_session=False)).rowcount
    if taken == 1:
        for name, value in values.items():
            set_committed_value(factor, name, value)
    return bool(taken == 1)


def confirm(session: Session, cfg: FactorsConfig, user: User, code: str,
            actor: Actor) -> list[str] | None:
    """Confirm the enrolment with a first code: from now on it is a factor. Returns the
    new recovery codes when it is the user's first factor (None otherwise)."""
    factor = _factor(session, user.id)
    if factor is None or factor.confirmed_at is not None:
        raise NotFound("No authenticator app is waiting for confirmation.")
    step = _matching_step(cfg, factor, code)
    if step is None or not _take_step(session, cfg, factor, step, confirming=True):
        raise Invalid({"code": [WRONG_CODE]})
    factor_changed(session, cfg, user, actor, "added", "totp")
    return recovery_codes.issue_if_first(session, cfg, user, actor)


def verify(session: Session, cfg: FactorsConfig, user: User, code: str) -> bool:
    """Whether ``code`` proves the user's confirmed TOTP factor now. A wrong code (or
    one already used) counts toward the lockout; none is accepted while locked."""
    factor = _factor(session, user.id)
    if factor is None or factor.confirmed_at is None:
        return False
    if lockout.locked_until(lockout.security_row(session, user.id), cfg.now()) is not None:
        return False
    step = _matching_step(cfg, factor, code)
    if step is not None and _take_step(session, cfg, factor, step, confirming=False):
        return True
    lockout.note_second_factor_failure(session, cfg.lifecycle, user)
    return False


def discard(session: Session, user_id: str) -> int:
    """Delete the user's authenticator app, confirmed or not, and nothing else, without
    an event: how many there were (0 or 1). The caller reports the change."""
    return int(session.execute(delete(TotpFactor).where(TotpFactor.user_id == user_id)).rowcount)


def remove(session: Session, cfg: FactorsConfig, user: User, actor: Actor) -> None:
    """Remove the user's authenticator app (confirmed or not). Recovery codes stand in
    for the factors, so they go with the last one: they stay while a passkey remains."""
    factor = _factor(session, user.id)
    if factor is None:
        raise NotFound("No authenticator app is set up.")
    was_confirmed = factor.confirmed_at is not None
    discard(session, user.id)
    if was_confirmed:
        factor_changed(session, cfg, user, actor, "removed", "totp")
        if not held.any_factor(session, user.id):
            recovery_codes.discard(session, user.id)
