"""The login's second step: after the right password, a user with a factor proves it
with a code from the authenticator app, a recovery code or one of their passkeys.

:func:`required` is what ``authenticate`` asks to turn a right password into
``NEEDS_SECOND_FACTOR``; :func:`prove` checks a code, :func:`prove_with_passkey` a
passkey's assertion. A wrong code counts toward the account's lockout like a wrong
password (a passkey's assertion cannot be guessed, so a refused one does not); nothing is
accepted while the account is locked.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from services.identity.lifecycle import lockout, login_rules
from services.identity.lifecycle.domain import SYSTEM, Actor, record
from services.identity.models import User, UserStatus

from . import held, passkeys, recovery_codes, totp
from .config import FactorsConfig

# RFC 8176: a one-time code ("otp") after the password ("pwd") is two factors ("mfa").
AMR_WITH_CODE = ["pwd", "otp", "mfa"]


@dataclass(frozen=True)
class Proof:
    amr: list[str]
    # How many recovery codes are left, when one was used.
    recovery_codes_left: int | None = None


def required(session: Session, user_id: str) -> bool:
    """Whether signing in as this user needs a second step (a confirmed authenticator
    app or a passkey)."""
    return held.any_factor(session, user_id)


def _looks_like_totp(code: str) -> bool:
    digits = "".join(code.split())
    return len(digits) == 6 and digits.isdigit()


def prove(session: Session, cfg: FactorsConfig, user: User, code: str,
          actor: Actor) -> Proof | None:
    """The proof ``code`` gives for ``user``, or None (wrong, used, locked or no longer
    active). Its records (a used code, the failure count) are in ``session``."""
    if not _may_continue(session, cfg, user):
        return None
    if lockout.second_factor_codes_blocked(lockout.security_row(session, user.id),
                                           cfg.lifecycle):
        record(session, cfg.lifecycle, "login.refused", SYSTEM, user.id,
               reason="second_factor_codes_blocked")
        return None
    if _looks_like_totp(code):
        if not totp.verify(session, cfg, user, code):
            return None
        proof = Proof(AMR_WITH_CODE)
    else:
        left = recovery_codes.use(session, cfg, user, code, actor)
        if left is None:
            lockout.note_second_factor_failure(session, cfg.lifecycle, user)
            return None
        proof = Proof(AMR_WITH_CODE, left)
    return _proven(session, cfg, user, actor, proof,
                   "totp" if proof.recovery_codes_left is None else "recovery_code")


def prove_with_passkey(session: Session, cfg: FactorsConfig, passkey_cfg: passkeys.PasskeyConfig,
                       user: User, session_id: str, response: str | dict,
                       actor: Actor) -> Proof | None:
    """The proof an assertion of one of ``user``'s passkeys gives, answering the second
    factor challenge of login session ``session_id``
    (``passkeys.authentication_options`` with the user), or None (refused, locked or no
    longer active). Success: ``amr`` pwd + hwk (or swk) + mfa (RFC 8176)."""
    if not _may_continue(session, cfg, user):
        return None
    result = passkeys.authenticate(session, passkey_cfg, session_id, response, actor)
    if result.user is None or result.passkey is None or result.user.id != user.id:
        return None
    return _proven(session, cfg, user, actor,
                   Proof(["pwd", passkeys.method(result.passkey), "mfa"]), "passkey")


def _may_continue(session: Session, cfg: FactorsConfig, user: User) -> bool:
    if user.status != UserStatus.ACTIVE or lockout.locked_until(
            lockout.security_row(session, user.id), cfg.now()) is not None:
        record(session, cfg.lifecycle, "login.refused", SYSTEM, user.id, reason="locked")
        return False
    return True


def _proven(session: Session, cfg: FactorsConfig, user: User, actor: Actor, proof: Proof,
            method: str) -> Proof:
    login_rules.complete_sign_in(session, cfg.lifecycle, user)
    record(session, cfg.lifecycle, "login.second_factor", actor, user.id, method=method)
    return proof
