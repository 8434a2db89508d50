"""Tables of enrollment and activation (declared on identity's ``Base``).

Nothing secret is stored in clear: PIN and Word are argon2id hashes,
access codes and link tokens are keyed/unkeyed digests, account numbers are the last
five digits plus an HMAC fingerprint.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Enum,
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from services.common.db import UTCDateTime
from services.common.events import utcnow
from services.common.single_use import SingleUseMixin
from services.identity.models import Base, Company, new_id


class EnrollmentStatus(enum.StrEnum):
    SUBMITTED = "submitted"
    EMAIL_VERIFIED = "email_verified"
    IN_REVIEW = "in_review"
    CODE_ISSUED = "code_issued"
    ACTIVATED = "activated"
    LOCKED = "locked"
    EXPIRED = "expired"


S = EnrollmentStatus
# The enrollment state machine. ``code_issued → code_issued`` is a help-desk re-issue;
# ``expired → code_issued`` is allowed only once the email was verified (service rule).
ENROLLMENT_TRANSITIONS: dict[EnrollmentStatus, frozenset[EnrollmentStatus]] = {
    S.SUBMITTED: frozenset({S.EMAIL_VERIFIED, S.EXPIRED}),
    S.EMAIL_VERIFIED: frozenset({S.IN_REVIEW, S.CODE_ISSUED}),
    S.IN_REVIEW: frozenset({S.CODE_ISSUED}),
    S.CODE_ISSUED: frozenset({S.CODE_ISSUED, S.ACTIVATED, S.LOCKED, S.EXPIRED}),
    S.LOCKED: frozenset({S.CODE_ISSUED}),
    S.EXPIRED: frozenset({S.CODE_ISSUED}),
    S.ACTIVATED: frozenset(),
}

# An enrollment in one of these blocks a new one with the same email.
PENDING = frozenset({S.SUBMITTED, S.EMAIL_VERIFIED, S.IN_REVIEW, S.CODE_ISSUED, S.LOCKED})


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    return Enum(cls, name=name, native_enum=False, length=20,
                values_callable=lambda e: [m.value for m in e])


class Enrollment(Base):
    __tablename__ = "enrollments"

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    tracking_number: Mapped[str] = mapped_column(String(20), unique=True)
    status: Mapped[EnrollmentStatus] = mapped_column(_enum(EnrollmentStatus, "enrollment_status"),
                                                     default=S.SUBMITTED, index=True)
    given_name: Mapped[str] = mapped_column(String(120))
    family_name: Mapped[str] = mapped_column(String(120))
    email: Mapped[str] = mapped_column(String(320))
    email_key: Mapped[str] = mapped_column(String(320), index=True)
    phone: Mapped[str] = mapped_column(String(32))
    job_title: Mapped[str] = mapped_column(String(120))
    preferred_language: Mapped[str] = mapped_column(String(5), default="en")
    company_id: Mapped[str] = mapped_column(ForeignKey("companies.id"), index=True)
    company_name: Mapped[str] = mapped_column(String(200))
    address_line1: Mapped[str] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200), nullable=True)
    city: Mapped[str] = mapped_column(String(120))
    region: Mapped[str | None] = mapped_column(String(120), nullable=True)
    postal_code: Mapped[str] = mapped_column(String(20))
    country: Mapped[str] = mapped_column(String(2))
    tax_id: Mapped[str] = mapped_column(String(40))
    pin_hash: Mapped[str] = mapped_column(String(255))
    word_hash: Mapped[str] = mapped_column(String(255))
    verification_digest: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                            nullable=True)
    verification_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime(),
                                                                     nullable=True)
    activation_ticket_digest: Mapped[str | None] = mapped_column(String(64), unique=True,
                                                                 nullable=True)
    activation_ticket_expires_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime(), nullable=True)
    failed_attempts: Mapped[int] = mapped_column(Integer, default=0)
    user_id: Mapped[str | None] = mapped_column(String(36), nullable=True, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    activated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    company: Mapped[Company] = relationship(lazy="joined")
    accounts: Mapped[list[EnrollmentAccount]] = relationship(
        order_by="EnrollmentAccount.position", cascade="all, delete-orphan", lazy="selectin")


class EnrollmentAccount(Base):
    """A card account the enrolling person will manage: never the full number."""

    __tablename__ = "enrollment_accounts"
    __table_args__ = (UniqueConstraint("enrollment_id", "fingerprint",
                                       name="uq_enrollment_accounts_fingerprint"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    position: Mapped[int] = mapped_column(Integer)
    last5: Mapped[str] = mapped_column(String(5))
    fingerprint: Mapped[str] = mapped_column(String(64), index=True)


class AccessCode(SingleUseMixin, Base):
    """One issued access code (a single-use secret: see services/common/single_use.py)."""

    __tablename__ = "access_codes"
    subject_key = "enrollment_id"

    enrollment_id: Mapped[str] = mapped_column(ForeignKey("enrollments.id"), index=True)
    issued_by: Mapped[str | None] = mapped_column(String(64), nullable=True)
