"""Tables owned by the identity service.

The OIDC provider's tables live in :mod:`services.identity.oidc.models`; they are
imported at the bottom so that ``Base.metadata`` (Alembic, tests) sees every table.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, Enum, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime, new_metadata
from services.common.events import OutboxMixin, ProcessedEventMixin, utcnow


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class UserStatus(enum.StrEnum):
    """A user's standing. Only ``active`` users may log in."""

    ACTIVE = "active"
    INACTIVE = "inactive"
    LOCKED = "locked"
    DISABLED = "disabled"


# Allowed status transitions (lockout, inactivity and help-desk flows drive them).
USER_TRANSITIONS: dict[UserStatus, frozenset[UserStatus]] = {
    UserStatus.ACTIVE: frozenset({UserStatus.INACTIVE, UserStatus.LOCKED, UserStatus.DISABLED}),
    UserStatus.INACTIVE: frozenset({UserStatus.ACTIVE, UserStatus.DISABLED}),
    UserStatus.LOCKED: frozenset({UserStatus.ACTIVE, UserStatus.DISABLED}),
    UserStatus.DISABLED: frozenset({UserStatus.ACTIVE}),
}


def new_id() -> str:
    return str(uuid.uuid4())


class User(Base):
    """A person who logs in. ``id`` is the OIDC ``sub``."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    username: Mapped[str] = mapped_column(String(150))
    # Lower-cased username: uniqueness and lookup are case-insensitive.
    username_key: Mapped[str] = mapped_column(String(150), unique=True)
    password_hash: Mapped[str | None] = mapped_column(String(255), nullable=True)
    email: Mapped[str] = mapped_column(String(320))
    email_verified: Mapped[bool] = mapped_column(Boolean, default=False)
    given_name: Mapped[str] = mapped_column(String(120), default="")
    family_name: Mapped[str] = mapped_column(String(120), default="")
    phone_number: Mapped[str | None] = mapped_column(String(32), nullable=True)
    preferred_language: Mapped[str] = mapped_column(String(5), default="en")
    company_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    status: Mapped[UserStatus] = mapped_column(
        Enum(UserStatus, name="user_status", native_enum=False,
             values_callable=lambda e: [m.value for m in e]),
        default=UserStatus.ACTIVE)
    last_login_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    @staticmethod
    def key_for(username: str) -> str:
        return username.strip().lower()


from services.identity.enrollment import models as _enrollment_models  # noqa: E402,F401
from services.identity.lifecycle import models as _lifecycle_models  # noqa: E402,F401
from services.identity.oidc import models as _oidc_models  # noqa: E402,F401  (registers tables)
