"""The help desk's view of a user's second factors, and their reset.

The list shows what the help desk needs to talk with the user (what kinds are set up,
when made and last used) and nothing secret: no TOTP seed, no recovery code or hash, no
public key or credential id. No Flask here.

A reset removes every factor at once (the authenticator app, the recovery codes, the
passkeys) for a user who lost them. With nothing left, the login asks for the password
alone (``second_step.required`` is false), and the user sets up a new factor from
``/account/security`` after signing in.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import redis
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.common.domain_errors import Conflict
from services.identity.lifecycle import lockout
from services.identity.lifecycle.domain import Actor, get_user, person, publish, record
from services.identity.lifecycle.helpdesk import acted
from services.identity.lifecycle.revocation import sign_out_everywhere

from . import passkeys, recovery_codes, totp
from .config import FactorsConfig
from .models import RecoveryCode, TotpFactor


def _totp_view(factor: TotpFactor | None) -> dict[str, Any] | None:
    if factor is None:
        return None
    # Only the time step of the last accepted code is kept (the confirming code counts).
    used = (datetime.fromtimestamp(factor.last_used_step * totp.STEP_SECONDS, UTC)
            if factor.confirmed_at is not None and factor.last_used_step else None)
    return {"created_at": factor.created_at, "confirmed_at": factor.confirmed_at,
            "last_used_at": used}


def _recovery_codes_view(session: Session, user_id: str) -> dict[str, Any] | None:
    made = session.scalar(select(func.min(RecoveryCode.created_at)).where(
        RecoveryCode.user_id == user_id))
    if made is None:
        return None
    return {"remaining": recovery_codes.remaining(session, user_id), "created_at": made}


def factors_of(session: Session, user_id: str) -> dict[str, Any]:
    """The user's factors as the help desk sees them (see the module's docstring);
    raises NotFound for an unknown user."""
    user = get_user(session, user_id)
    return {"user_id": user.id, "totp": _totp_view(session.get(TotpFactor, user.id)),
            "recovery_codes": _recovery_codes_view(session, user.id),
            "passkeys": passkeys.list_for(session, user)}


@dataclass(frozen=True)
class FactorsReset:
    tracking_number: str
    # How many of each kind were removed: ``totp`` (0 or 1), ``recovery_codes``
    # (used or not), ``passkeys``.
    removed: dict[str, int]
    # What was ended: ``refresh_tokens`` (families) and login ``sessions``.
    signed_out: dict[str, int]


def reset(session: Session, cfg: FactorsConfig, client: redis.Redis, namespace: str,
          user_id: str, actor: Actor, why: str) -> FactorsReset:
    """Remove every factor of the user, with an audit row (``factors.reset``) and an
    event (``identity.factors.reset``, which emails the user), under a new tracking
    number; like every help-desk action it is also recorded by
    :func:`~services.identity.lifecycle.helpdesk.acted`. Every session and refresh token of the user ends too: a reset usually
    follows a lost or stolen device, which may still be signed in. Raises Conflict when
    the user has no factor (nothing is recorded)."""
    user = get_user(session, user_id)
    removed = {"totp": totp.discard(session, user.id),
               "recovery_codes": recovery_codes.discard(session, user.id),
               "passkeys": passkeys.discard(session, user.id)}
    lockout.restart_second_factor_count(session, user.id)
    if not any(removed.values()):
        raise Conflict("The user has no second factor to reset.", kind="no-factors")
    signed_out = sign_out_everywhere(session, client, namespace, user.id)
    tracking = tracking_numbers.generate()
    record(session, cfg.lifecycle, "factors.reset", actor, user.id,
           tracking_number=tracking, why=why, removed=removed, signed_out=signed_out)
    publish(session, cfg.lifecycle, "identity.factors.reset", user,
            {**person(user), "actor_id": actor.id, "removed": removed},
            tracking_number=tracking)
    acted(session, cfg.lifecycle, user, actor, "factors_reset", why, tracking_number=tracking)
    return FactorsReset(tracking, removed, signed_out)
