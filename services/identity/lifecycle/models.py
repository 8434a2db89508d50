"""Tables of the account lifecycle (declared on identity's ``Base``).

Nothing secret in clear: link tokens are SHA-256 digests (256 random bits each), old
passwords argon2id hashes. Security answers are enrollment's ``security_answers``.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.events import utcnow
from services.common.single_use import SingleUseMixin
from services.identity.models import Base


class UserSecurity(Base):
    """Per-user lifecycle state: the failed-login run, the lock, inactivity bookkeeping."""

    __tablename__ = "user_security"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    failed_logins: Mapped[int] = mapped_column(Integer, default=0)
    # Wrong second-factor codes in a row: unlike failed_logins, neither the lock running
    # out nor a password reset restarts it (lockout.second_factor_codes_blocked).
    failed_second_factors: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    # Inactivity counts from the latest of last login, activation and reactivation.
    reactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime(),
                                                            nullable=True)
    inactivity_warned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(),
                                                                  nullable=True)


class CompanyPolicy(Base):
    """A company's own rules: a shorter inactivity period (e.g. 90 days under PCI DSS)."""

    __tablename__ = "company_policies"

    company_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    inactivity_days: Mapped[int | None] = mapped_column(Integer, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PasswordHistory(Base):
    """A password the user had before (argon2id hash): new passwords may not repeat them."""

    __tablename__ = "password_history"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class PasswordReset(SingleUseMixin, Base):
    """One emailed reset link (single use, see services/common/single_use.py); it needs
    the answer to ``question`` too."""

    __tablename__ = "password_resets"
    subject_key = "user_id"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    tracking_number: Mapped[str] = mapped_column(String(20), index=True)
    question: Mapped[str] = mapped_column(String(40))
    failed_answers: Mapped[int] = mapped_column(Integer, default=0)


class ContactChange(SingleUseMixin, Base):
    """A requested new email address; its verification link is a single-use secret
    (``used_at`` is when the address was confirmed)."""

    __tablename__ = "contact_changes"
    subject_key = "user_id"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    new_email: Mapped[str] = mapped_column(String(320))
    old_email: Mapped[str] = mapped_column(String(320))
    tracking_number: Mapped[str] = mapped_column(String(20), index=True)


class UserProfile(Base):
    """Profile fields identity's ``users`` table lacks: job title and email preferences."""

    __tablename__ = "user_profiles"

    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"),
                                         primary_key=True)
    job_title: Mapped[str | None] = mapped_column(String(120), nullable=True)
    notify_status_changes: Mapped[bool] = mapped_column(Boolean, default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
