"""Which second factors a user holds, read from their tables alone: TOTP and passkeys
both ask it (whether the recovery codes still stand in for something, whether a login
needs a second step) without importing each other."""

from __future__ import annotations

from sqlalchemy import exists, select
from sqlalchemy.orm import Session

from .models import TotpFactor
from .passkey_models import WebauthnCredential


def has_totp(session: Session, user_id: str) -> bool:
    """A confirmed authenticator app (one still being set up does not count)."""
    return bool(session.scalar(select(exists().where(
        TotpFactor.user_id == user_id, TotpFactor.confirmed_at.is_not(None)))))


def has_passkey(session: Session, user_id: str) -> bool:
    return bool(session.scalar(select(exists().where(WebauthnCredential.user_id == user_id))))


def any_factor(session: Session, user_id: str) -> bool:
    """Whether the user holds a factor: a confirmed authenticator app or a passkey."""
    return has_totp(session, user_id) or has_passkey(session, user_id)
