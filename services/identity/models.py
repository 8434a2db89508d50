"""Identity's tables that every flow shares: users, companies, security answers, the
audit log (and the outbox). Each flow's own tables live in its package
(``enrollment/models.py``, ``lifecycle/models.py``, ``oidc/models.py``);
:mod:`services.identity.tables` gathers them all for Alembic and the CLI.
"""

from __future__ import annotations

import enum
import uuid
from datetime import datetime

from sqlalchemy import Boolean, Enum, ForeignKey, Integer, String, Text, UniqueConstraint, event
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


class Company(Base):
    """A company, identified by its country and normalised tax id."""

    __tablename__ = "companies"
    __table_args__ = (UniqueConstraint("country", "tax_id_key", name="uq_companies_country_tax"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    country: Mapped[str] = mapped_column(String(2))
    tax_id_key: Mapped[str] = mapped_column(String(40))
    requires_review: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # The company's MFA policy (``factors/policy.py``: optional, required,
    # phishing_resistant), when it last changed and the days existing users have to comply.
    mfa_policy: Mapped[str] = mapped_column(String(20), default="optional",
                                            server_default="optional")
    mfa_policy_set_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    mfa_grace_days: Mapped[int] = mapped_column(Integer, default=0, server_default="0")


class SecurityAnswer(Base):
    """A user's answer to one security question (argon2id of the normalised answer)."""

    __tablename__ = "security_answers"
    __table_args__ = (UniqueConstraint("user_id", "question", name="uq_security_answers_question"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    question: Mapped[str] = mapped_column(String(40))
    answer_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEvent(Base):
    """An append-only record of a security-relevant event (see :mod:`services.identity.audit`)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                  index=True)
    action: Mapped[str] = mapped_column(String(80), index=True)
    actor_type: Mapped[str] = mapped_column(String(20))
    actor_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    subject_type: Mapped[str] = mapped_column(String(20))
    subject_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    tracking_number: Mapped[str | None] = mapped_column(String(20), nullable=True, index=True)
    ip: Mapped[str | None] = mapped_column(String(64), nullable=True)
    request_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="{}")


class AuditLogIsAppendOnly(Exception):
    pass


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_change(_mapper, _connection, _target) -> None:
    raise AuditLogIsAppendOnly("audit rows are never changed or deleted")
