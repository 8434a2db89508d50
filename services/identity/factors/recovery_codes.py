"""Recovery codes: ten one-time codes that stand in for a lost second factor.

They are made when the user's first factor (an authenticator app or a passkey) is added and on request (the old ones
die), shown once, and stored as argon2id hashes (``passwords.HASHER``). A code is used
up by a conditional ``UPDATE … WHERE used_at IS NULL``: two requests racing with one
code, one of them wins. Using one tells the user by email (``identity.recovery_code.used``).
"""

from __future__ import annotations

import secrets

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from services.identity.lifecycle.domain import Actor, person, publish, record
from services.identity.models import User
from services.identity.passwords import HASHER, verify_password

from .config import FactorsConfig
from .models import RecoveryCode

COUNT = 10
# Lower-case letters and digits without those people misread (0/o, 1/l/i).
ALPHABET = "abcdefghjkmnpqrstuvwxyz23456789"
LENGTH = 10  # about 49 bits each


def normalised(code: str) -> str:
    """A typed code as stored: lower case, without the dash, spaces or other separators."""
    return "".join(ch for ch in code.lower() if ch.isalnum())


def _new_code() -> str:
    raw = "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))
    return f"{raw[:5]}-{raw[5:]}"


def generate(session: Session, cfg: FactorsConfig, user: User, actor: Actor) -> list[str]:
    """Replace the user's recovery codes with :data:`COUNT` new ones; returns them (the
    only time they are seen in clear)."""
    session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user.id))
    codes = [_new_code() for _ in range(COUNT)]
    now = cfg.now()
    session.add_all(RecoveryCode(user_id=user.id, code_hash=HASHER.hash(normalised(code)),
                                 created_at=now) for code in codes)
    record(session, cfg.lifecycle, "recovery_codes.generated", actor, user.id, count=COUNT)
    return codes


def issue_if_first(session: Session, cfg: FactorsConfig, user: User,
                   actor: Actor) -> list[str] | None:
    """The first factor (an authenticator app or a passkey) brings the codes: new ones
    when the user has no unused code, returned to be shown once; else None."""
    if remaining(session, user.id):
        return None
    return generate(session, cfg, user, actor)


def remaining(session: Session, user_id: str) -> int:
    return session.scalar(select(func.count()).select_from(RecoveryCode).where(
        RecoveryCode.user_id == user_id, RecoveryCode.used_at.is_(None))) or 0


def discard(session: Session, user_id: str) -> int:
    """Delete the user's codes (when no factor is left for them to stand in for): how
    many there were, used or not."""
    return int(session.execute(delete(RecoveryCode).where(RecoveryCode.user_id == user_id)).rowcount)


def use(session: Session, cfg: FactorsConfig, user: User, code: str,
        actor: Actor) -> int | None:
    """Use up ``code`` if it is one of the user's unused codes: how many remain after it,
    or None when it is not (unknown, used, or used meanwhile by a concurrent request)."""
    typed = normalised(code)
    if len(typed) != LENGTH:
        return None
    unused = session.execute(select(RecoveryCode.id, RecoveryCode.code_hash).where(
        RecoveryCode.user_id == user.id, RecoveryCode.used_at.is_(None))).all()
    match = next((row.id for row in unused if verify_password(row.code_hash, typed)), None)
    if match is None:
        return None
    claimed = session.execute(
        update(RecoveryCode).where(RecoveryCode.id == match, RecoveryCode.used_at.is_(None))
        .values(used_at=cfg.now()).execution_options(synchronize_session=False)).rowcount
    if claimed != 1:
        return None
    left = remaining(session, user.id)
    publish(session, cfg.lifecycle, "identity.recovery_code.used", user,
            {**person(user), "remaining": left})
    record(session, cfg.lifecycle, "recovery_code.used", actor, user.id, remaining=left)
    return left
