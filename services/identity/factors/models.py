"""Tables of a user's second factors (declared on identity's ``Base``).

Nothing secret in clear: the TOTP seed is Fernet-encrypted with ``KEY_ENCRYPTION_KEY``
(as the signing keys are), recovery codes are argon2id hashes.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.events import utcnow
from services.identity.models import Base


class TotpFactor(Base):
    """A user's authenticator app. It counts as a factor once ``confirmed_at`` is set
    (the user typed a first code); until then it is an enrolment in progress."""

    __tablename__ = "totp_factors"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    secret_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # The time step (Unix time // 30) of the last code accepted: a code is good once.
    last_used_step: Mapped[int] = mapped_column(Integer, default=0)


class RecoveryCode(Base):
    """One of a user's one-time recovery codes (argon2id hash); ``used_at`` once used."""

    __tablename__ = "recovery_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MfaPromptSnooze(Base):
    """Until when a user said "Not now" to the after-sign-in "add a passkey" page."""

    __tablename__ = "mfa_prompt_snoozes"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    snoozed_until: Mapped[datetime] = mapped_column(UTCDateTime())
