"""Tables of passkeys (WebAuthn), declared on identity's ``Base``.

Nothing secret is stored: a credential's public key is public, and a ceremony's challenge
is kept as a SHA-256 digest (it is 256 random bits) bound to a digest of the login
session's id, never the cookie value itself.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, Boolean, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.events import utcnow
from services.common.single_use import SingleUseMixin
from services.identity.models import Base, new_id


class WebauthnCredential(Base):
    """A user's registered passkey. ``credential_id`` is the authenticator's id for it,
    base64url without padding (as the browser's JSON carries it)."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # An id is at most 1023 bytes: 1364 base64url characters.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    # The authenticator's counter is an unsigned 32-bit number.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    transports: Mapped[str] = mapped_column(String(200), default="")
    name: Mapped[str] = mapped_column(String(100))
    aaguid: Mapped[str | None] = mapped_column(String(36), nullable=True)
    backed_up: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class WebauthnChallenge(SingleUseMixin, Base):
    """One ceremony's challenge (a single-use secret: services/common/single_use.py),
    bound to the login session that asked for it; a session has one live ceremony.
    ``user_id`` is the user it was issued for (registration, second factor), or None for a
    passwordless sign-in, where the credential names the user."""

    __tablename__ = "webauthn_challenges"
    subject_key = "session_key"

    session_key: Mapped[str] = mapped_column(String(64), index=True)
    purpose: Mapped[str] = mapped_column(String(20))
    user_id: Mapped[str | None] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                                nullable=True)
