"""Signing in with a passkey and no password (a discoverable credential, the person
verified by the authenticator: PIN or biometrics). No Flask here.

The assertion answers the passwordless challenge of the login session
(``passkeys.authentication_options`` without a user); the user it names must then be
allowed to sign in by the same lifecycle rules as a password login (lockout, inactivity,
status: ``login_rules.judge``), and success is recorded as one
(``login_rules.complete_sign_in``: the failed-attempt count restarts, ``last_login_at``,
``login.succeeded``).

``amr`` (RFC 8176): ``hwk`` (or ``swk`` for a synced passkey: :func:`passkeys.method`) for
the proof of possession of the key, ``user`` for the user verification the authenticator
performed (a PIN or a biometric; which one it was is not told, so neither ``pin`` nor
``fpt`` is claimed) and ``mfa``: possession plus what the person knows or is are two
factors (NIST SP 800-63B counts a verified passkey as a multi-factor authenticator).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from services.identity import audit
from services.identity.lifecycle import login_rules
from services.identity.login_outcome import LoginOutcome
from services.identity.models import User

from . import passkeys
from .config import FactorsConfig


@dataclass(frozen=True)
class PasswordlessSignIn:
    """``user`` and ``amr`` when the person may sign in; both None when refused (for any
    reason: the answer does not say which)."""

    user: User | None = None
    amr: list[str] | None = None


def sign_in(session: Session, cfg: FactorsConfig, passkey_cfg: passkeys.PasskeyConfig,
            session_id: str, response: str | dict[str, Any],
            actor: audit.Actor) -> PasswordlessSignIn:
    """Check the assertion, then the user's right to sign in; records (the claimed
    challenge, audit rows, a deactivation for inactivity) are in ``session`` whatever the
    outcome."""
    result = passkeys.authenticate(session, passkey_cfg, session_id, response, actor)
    if result.user is None or result.passkey is None:
        return PasswordlessSignIn()
    if not result.user_verified:
        # A second factor's challenge, answered without verification, proves possession
        # alone: never a sign-in on its own.
        passkeys.refuse(session, passkey_cfg, actor, result.user.id, "user_verification",
                        passkey_id=result.passkey.id)
        return PasswordlessSignIn()
    user = result.user
    if login_rules.judge(session, cfg.lifecycle, user, True) is not LoginOutcome.SIGNED_IN:
        return PasswordlessSignIn()
    login_rules.complete_sign_in(session, cfg.lifecycle, user)
    return PasswordlessSignIn(user, [passkeys.method(result.passkey), "user", "mfa"])
