"""Recording a status on a transaction: the one place a status moves and
``tracking.status.changed`` is recorded in the outbox."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from services.common.events import Envelope, record_event, utcnow

from .domain import Status
from .models import OutboxEvent, StatusChange, Transaction

STATUS_CHANGED = "tracking.status.changed"


def as_utc(value: datetime) -> datetime:
    """``value`` in UTC; without an offset it is UTC already. For times that did not come
    through a ``UTCDateTime`` column: an event's, a query's, a cursor's, and the driver-level
    look-up's rows (psycopg gives them in the session's time zone)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def add_history(session: Session, tx: Transaction, status: str, at: datetime, *,
                applied: bool, actor: str | None, comment: str | None = None,
                event_id: str | None = None, event_type: str | None = None) -> StatusChange:
    # Setting the many-to-one side queues the row without loading the whole history.
    entry = StatusChange(transaction=tx, status=status, at=at, actor=actor, comment=comment,
                         event_id=event_id, event_type=event_type, applied=applied,
                         recorded_at=utcnow())
    session.add(entry)
    return entry


def history_row(transaction_id: int, status: str, at: datetime, *, applied: bool,
                actor: str | None, comment: str | None, event_id: str | None,
                event_type: str | None) -> dict[str, Any]:
    """The values of one history line, for a bulk insert."""
    return {"transaction_id": transaction_id, "status": status, "at": at, "actor": actor,
            "comment": comment, "event_id": event_id, "event_type": event_type,
            "applied": applied, "recorded_at": utcnow()}


def publish_change(session: Session, tx: Transaction, old_status: str | None, comment: str | None,
                   correlation_id: str | None) -> None:
    """Record ``tracking.status.changed`` (docs/events.md) in the same transaction."""
    record_event(session, OutboxEvent, Envelope.new(
        STATUS_CHANGED, "tracking",
        {"transaction_type": tx.type, "old_status": old_status, "new_status": tx.status,
         "title_en": tx.title_en, "title_es": tx.title_es, "comment": comment},
        subject=tx.owner_user_id, company_id=tx.company_id,
        tracking_number=tx.tracking_number, correlation_id=correlation_id,
    ))


def move(session: Session, tx: Transaction, status: Status | str, at: datetime, *,
         actor: str | None, comment: str | None, correlation_id: str | None,
         event_id: str | None = None, event_type: str | None = None) -> None:
    """Apply an already-allowed status change: history, current status, outbox event."""
    old = tx.status
    tx.status = str(status)
    tx.last_event_at = at
    tx.updated_at = utcnow()
    add_history(session, tx, str(status), at, applied=True, actor=actor, comment=comment,
                event_id=event_id, event_type=event_type)
    publish_change(session, tx, old, comment, correlation_id)
