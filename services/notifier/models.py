"""Tables owned by the notifier service: outgoing messages and their delivery attempts,
the admin audit trail and the read model of recipients built from identity events."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    Enum,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common import domain_errors
from services.common.db import UTCDateTime, new_metadata
from services.common.events import ProcessedEventMixin, utcnow


class Base(DeclarativeBase):
    metadata = new_metadata()


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class MessageStatus(enum.StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    RETRYING = "retrying"
    DEAD = "dead"


# The outgoing-message state machine. A `sending` message whose sender died goes back
# to `retrying` (same Message-ID); a dead message goes back to `queued` on a resend.
ALLOWED_TRANSITIONS: dict[MessageStatus, frozenset[MessageStatus]] = {
    MessageStatus.QUEUED: frozenset({MessageStatus.SENDING}),
    MessageStatus.RETRYING: frozenset({MessageStatus.SENDING}),
    MessageStatus.SENDING: frozenset({MessageStatus.SENT, MessageStatus.RETRYING,
                                      MessageStatus.DEAD}),
    MessageStatus.SENT: frozenset(),
    MessageStatus.DEAD: frozenset({MessageStatus.QUEUED}),
}


class IllegalTransition(domain_errors.IllegalTransition):
    """A message cannot move from its status to the one asked for."""

    def __init__(self, current: MessageStatus, wanted: MessageStatus) -> None:
        super().__init__(f"a {current.value} message cannot become {wanted.value}")
        self.current = current
        self.wanted = wanted


class OutgoingMessage(Base):
    """One email to one recipient, written in the consumer's transaction before any send.

    Bodies of a message that carries a sealed secret are stored Fernet-encrypted with
    the sealing key while the message may still be sent, and set to NULL once sent.
    """

    __tablename__ = "outgoing_messages"
    __table_args__ = (
        UniqueConstraint("event_id", "template", "recipient",
                         name="uq_outgoing_messages_event_template_recipient"),
        Index("ix_outgoing_messages_due", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36))
    event_type: Mapped[str] = mapped_column(String(120))
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    template: Mapped[str] = mapped_column(String(60), index=True)
    recipient: Mapped[str] = mapped_column(String(320))
    recipient_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    language: Mapped[str] = mapped_column(String(5))
    status: Mapped[MessageStatus] = mapped_column(
        Enum(MessageStatus, native_enum=False, length=12, values_callable=lambda e: [m.value for m in e]),
        default=MessageStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    sending_since: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    tracking_number: Mapped[str | None] = mapped_column(String(32), nullable=True, index=True)
    subject: Mapped[str] = mapped_column(String(255))
    carries_secret: Mapped[bool] = mapped_column(Boolean, default=False)
    body_text: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_html: Mapped[str | None] = mapped_column(Text, nullable=True)
    body_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                 onupdate=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)

    def move_to(self, wanted: MessageStatus) -> None:
        """Change status along an allowed transition, else :class:`IllegalTransition`."""
        current = MessageStatus(self.status)
        if wanted not in ALLOWED_TRANSITIONS[current]:
            raise IllegalTransition(current, wanted)
        self.status = wanted


class AttemptOutcome(enum.StrEnum):
    SENT = "sent"
    ALREADY_DELIVERED = "already_delivered"
    TEMPORARY_FAILURE = "temporary_failure"
    PERMANENT_FAILURE = "permanent_failure"
    INTERRUPTED = "interrupted"


class DeliveryAttempt(Base):
    """The outcome of one try at handing a message to the SMTP server."""

    __tablename__ = "delivery_attempts"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_pk: Mapped[int] = mapped_column(ForeignKey("outgoing_messages.id", ondelete="CASCADE"),
                                            index=True)
    number: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(24))
    smtp_code: Mapped[int | None] = mapped_column(Integer, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class AuditEntry(Base):
    """Who did what through the admin API (a resend, for now)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    actor: Mapped[str] = mapped_column(String(120))
    action: Mapped[str] = mapped_column(String(40))
    message_pk: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    detail: Mapped[str | None] = mapped_column(Text, nullable=True)


class Recipient(Base):
    """Read model of a user's contact details and preferences (from identity events).

    ``as_of`` is the time of the event last applied, so an older event arriving late
    never overwrites newer details.
    """

    __tablename__ = "recipients"

    user_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    email: Mapped[str] = mapped_column(String(320))
    given_name: Mapped[str] = mapped_column(String(120), default="")
    preferred_language: Mapped[str] = mapped_column(String(5), default="en")
    status_changes: Mapped[bool] = mapped_column(Boolean, default=True)
    as_of: Mapped[datetime] = mapped_column(UTCDateTime())
