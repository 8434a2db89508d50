"""Tables owned by the tracking service."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from services.common.db import UTCDateTime, new_metadata
from services.common.events import OutboxMixin, ProcessedEventMixin, utcnow

# BIGINT on PostgreSQL; SQLite only auto-increments an INTEGER primary key.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = new_metadata()


class OutboxEvent(OutboxMixin, Base):
    pass


class ProcessedEvent(ProcessedEventMixin, Base):
    pass


class Transaction(Base):
    """One user-visible transaction. ``status`` is the last applied status."""

    __tablename__ = "transactions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    tracking_number: Mapped[str] = mapped_column(String(20), unique=True)
    type: Mapped[str] = mapped_column(String(64))
    owner_user_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    company_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    title_en: Mapped[str] = mapped_column(String(200))
    title_es: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    correlation_id: Mapped[str | None] = mapped_column(String(128), nullable=True)
    # occurred_at of the event (or API call) that set the current status.
    last_event_at: Mapped[datetime] = mapped_column(UTCDateTime())
    source: Mapped[str] = mapped_column(String(40))
    client_id: Mapped[str | None] = mapped_column(String(128), nullable=True)

    history: Mapped[list[StatusChange]] = relationship(
        back_populates="transaction", order_by="(StatusChange.at, StatusChange.id)",
        cascade="all, delete-orphan")

    __table_args__ = (
        # Overview pages: keyset on (created_at, id) within an owner or a company.
        Index("ix_transactions_owner_created", "owner_user_id", "created_at", "id"),
        Index("ix_transactions_company_created", "company_id", "created_at", "id"),
        Index("ix_transactions_company_status_created", "company_id", "status",
              "created_at", "id"),
    )


class StatusChange(Base):
    """One line of a transaction's history. ``applied`` is false for an event that
    arrived out of order (older than the current status) or asked for a transition
    the state machine forbids: it is kept, but it did not move the status."""

    __tablename__ = "status_history"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transaction_id: Mapped[int] = mapped_column(ForeignKey("transactions.id",
                                                           ondelete="CASCADE"))
    status: Mapped[str] = mapped_column(String(20))
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    actor: Mapped[str | None] = mapped_column(String(160), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    event_id: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    event_type: Mapped[str | None] = mapped_column(String(120), nullable=True)
    applied: Mapped[bool] = mapped_column(Boolean, default=True)
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    transaction: Mapped[Transaction] = relationship(back_populates="history")

    __table_args__ = (
        Index("ix_status_history_transaction_at", "transaction_id", "at", "id"),
    )


class IdempotencyKey(Base):
    """The stored answer to a request made with an ``Idempotency-Key`` by one client."""

    __tablename__ = "idempotency_keys"

    client_id: Mapped[str] = mapped_column(String(128), primary_key=True)
    key: Mapped[str] = mapped_column(String(255), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                 index=True)
