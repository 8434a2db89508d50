"""Tables owned by the permissions service (DESIGN.md §2).

* the catalog: entitlements, roles (bundles of entitlements), home-page sections;
* the read model of companies, their accounts and users, built from identity's events;
* administrators (one principal per company: ``companies.principal_user_id``; any
  number of secondary administrators), grants, access requests;
* an append-only audit trail.

Account numbers are never held in clear: only the last five digits and identity's
keyed fingerprint.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    event,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UTCDateTime, new_metadata
from services.common.events import OutboxMixin, ProcessedEventMixin, utcnow


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


# -- catalog ---------------------------------------------------------------------------

class Entitlement(Base):
    __tablename__ = "entitlements"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    description_en: Mapped[str] = mapped_column(String(300))
    description_es: Mapped[str] = mapped_column(String(300))
    category: Mapped[str] = mapped_column(String(40))
    account_scopable: Mapped[bool] = mapped_column(Boolean, default=False)
    # The authentication level (``services/common/acr.py``) a holder's token must show for
    # a check to allow this entitlement; NULL: any. Checks answer ``step_up_required``
    # below it (:mod:`step_up`).
    required_acr: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Role(Base):
    __tablename__ = "roles"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_es: Mapped[str] = mapped_column(String(120))


class RoleEntitlement(Base):
    __tablename__ = "role_entitlements"

    role_key: Mapped[str] = mapped_column(ForeignKey("roles.key"), primary_key=True)
    entitlement_key: Mapped[str] = mapped_column(ForeignKey("entitlements.key"), primary_key=True)


class HomeSection(Base):
    """A tile of the portal's home page, shown to whoever holds ``entitlement_key``."""

    __tablename__ = "home_sections"

    key: Mapped[str] = mapped_column(String(80), primary_key=True)
    entitlement_key: Mapped[str] = mapped_column(ForeignKey("entitlements.key"), index=True)
    title_en: Mapped[str] = mapped_column(String(120))
    title_es: Mapped[str] = mapped_column(String(120))
    url_path: Mapped[str] = mapped_column(String(200))
    position: Mapped[int] = mapped_column(Integer)


# -- read model ------------------------------------------------------------------------

class Company(Base):
    __tablename__ = "companies"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    # One column holds the one principal: "exactly one per company" is structural.
    principal_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # Entitlement keys this company's program allows; NULL means the whole catalog.
    allowed_entitlements: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)


class CompanyAccount(Base):
    __tablename__ = "company_accounts"

    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(128), primary_key=True)
    last5: Mapped[str] = mapped_column(String(5))


class User(Base):
    """A person identity activated. ``company_id`` is NULL for platform staff (the
    bootstrap help-desk administrator), who belong to no company."""

    __tablename__ = "users"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    company_id: Mapped[str | None] = mapped_column(ForeignKey("companies.id"), index=True,
                                                   nullable=True)
    email: Mapped[str] = mapped_column(String(320), default="")
    given_name: Mapped[str] = mapped_column(String(120), default="")
    family_name: Mapped[str] = mapped_column(String(120), default="")
    preferred_language: Mapped[str] = mapped_column(String(8), default="en")
    status: Mapped[str] = mapped_column(String(20), default="active")
    # ``member``, or ``pending``/``rejected`` for a newcomer the company has not approved
    # (see memberships.py): such a user holds no company power and is in no company view.
    membership: Mapped[str] = mapped_column(String(20), default="member",
                                            server_default="member")
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class SecondaryAdministrator(Base):
    __tablename__ = "secondary_administrators"

    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


# -- grants and requests ---------------------------------------------------------------

class Grant(Base):
    """User × entitlement within a company. ``accounts`` limits it to some of the
    company's accounts (``[{"last5", "fingerprint"}]``); NULL means all of them."""

    __tablename__ = "grants"
    __table_args__ = (Index("ix_grants_user_active", "user_id", "revoked_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"))
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"))
    entitlement_key: Mapped[str] = mapped_column(ForeignKey("entitlements.key"))
    accounts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    source: Mapped[str] = mapped_column(String(80))  # "role:<key>", "request:<id>", "operator"
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class PlatformRole(Base):
    """A platform power held by a person (``services.common.powers.PLATFORM_ROLES``):
    never a company entitlement, granted only by a platform administrator (or the
    operator's ``iamctl platform grant``), with a reason. A revoked role's row is
    deleted; the audit log keeps its history. No foreign key to ``users``: the operator
    may grant before identity's activation event has reached the read model."""

    __tablename__ = "platform_roles"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    role: Mapped[str] = mapped_column(String(40), primary_key=True)
    granted_by: Mapped[str] = mapped_column(String(64))
    why: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AccessRequest(Base):
    __tablename__ = "access_requests"
    __table_args__ = (Index("ix_access_requests_status_expires", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(20), unique=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    requester_id: Mapped[str] = mapped_column(String(64), index=True)
    target_user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), index=True)
    entitlements: Mapped[list[str]] = mapped_column(JSON)
    accounts: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, nullable=True)
    justification: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    needs_cosign: Mapped[bool] = mapped_column(Boolean, default=False)
    cosigned_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    reminded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class MembershipRequest(Base):
    """A newcomer asks to join a company that already has members; its principal
    administrator (or the help desk) decides. ``accounts`` are the account numbers the
    newcomer named at enrollment (``[{"last5", "fingerprint"}]``), attached to the company
    only on approval. States: :class:`domain.MembershipState`."""

    __tablename__ = "membership_requests"
    __table_args__ = (Index("ix_membership_requests_status_expires", "status", "expires_at"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    tracking_number: Mapped[str] = mapped_column(String(20), unique=True)
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    # One request per activated user: a redelivered activation finds it.
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id"), unique=True)
    accounts: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    decided_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuditEntry(Base):
    """Append-only: who did what, when, why. The ORM refuses updates and deletes."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    occurred_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor_id: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(80))
    target_type: Mapped[str] = mapped_column(String(40))
    target_id: Mapped[str] = mapped_column(String(64), index=True)
    company_id: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    why: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)


@event.listens_for(AuditEntry, "before_update")
@event.listens_for(AuditEntry, "before_delete")
def _audit_is_append_only(_mapper, _connection, _target) -> None:
    raise PermissionError("the audit log is append-only")
