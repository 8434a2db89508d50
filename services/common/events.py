"""Events: the envelope (DESIGN.md §3), sealing, the transactional outbox, its relay
to Redis Streams, and consumers on consumer groups.

Contract
--------
* A use case records an event with ``record_event(session, outbox_model, envelope)``
  inside the same ``db.transaction()`` as its state change.
* ``OutboxRelay.relay_once()`` moves committed outbox rows to
  ``<namespace>.events.<service>`` with ``XADD`` (field ``envelope`` = JSON) and marks
  them published. Several relays may run at once.
* ``Consumer`` reads one or more streams in its own group, runs
  ``handler(session, envelope)`` inside a transaction that also records the event id
  as processed, commits, then ``XACK``s. A redelivered event whose id is already
  processed is acknowledged without calling the handler again. Entries left pending
  (dead consumer, failed handler) are reclaimed with ``XAUTOCLAIM`` after
  ``claim_idle_ms``; an entry delivered ``max_deliveries`` times is moved to
  ``<namespace>.dead.<group>`` with its last error and acknowledged.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, Session, mapped_column


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Envelope:
    """The wire shape of every event (DESIGN.md §3)."""

    id: str
    type: str
    source: str
    occurred_at: str
    data: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    correlation_id: str = ""
    tracking_number: str | None = None
    subject: str | None = None
    company_id: str | None = None
    sealed: str | None = None

    @classmethod
    def new(cls, type: str, source: str, data: dict[str, Any] | None = None, *,
            subject: str | None = None, company_id: str | None = None,
            tracking_number: str | None = None, correlation_id: str | None = None,
            sealed: str | None = None, version: int = 1,
            occurred_at: datetime | None = None) -> Envelope:
        event_id = str(uuid.uuid4())
        return cls(
            id=event_id, type=type, source=source,
            occurred_at=(occurred_at or utcnow()).isoformat(),
            data=data or {}, version=version,
            correlation_id=correlation_id or event_id,
            tracking_number=tracking_number, subject=subject, company_id=company_id,
            sealed=sealed,
        )

    def to_json(self) -> str:
        return json.dumps(asdict(self), separators=(",", ":"), sort_keys=True)

    @classmethod
    def from_json(cls, raw: str | bytes) -> Envelope:
        """Parse an envelope; raises ValueError on anything malformed (a poison entry)."""
        try:
            obj = json.loads(raw)
        except (TypeError, json.JSONDecodeError) as exc:
            raise ValueError(f"envelope is not JSON: {exc.msg if hasattr(exc, 'msg') else exc}") from None
        if not isinstance(obj, dict):
            raise ValueError("envelope is not an object")
        missing = [k for k in ("id", "type", "source", "occurred_at") if not obj.get(k)]
        if missing:
            raise ValueError(f"envelope lacks {', '.join(missing)}")
        known = {f for f in cls.__dataclass_fields__}
        values = {k: v for k, v in obj.items() if k in known}
        if not isinstance(values.get("data", {}), dict):
            raise ValueError("envelope data is not an object")
        return cls(**values)

    @property
    def occurred(self) -> datetime:
        return datetime.fromisoformat(self.occurred_at)

    def without_sealed(self) -> Envelope:
        return replace(self, sealed=None)


class Sealer:
    """Seals the secrets a notification must carry (access code, links) with Fernet.

    Only the notifier unseals, in memory, while rendering.
    """

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    def seal(self, secrets: dict[str, Any]) -> str:
        return self._fernet.encrypt(json.dumps(secrets).encode()).decode()

    def unseal(self, token: str) -> dict[str, Any]:
        try:
            return json.loads(self._fernet.decrypt(token.encode()))
        except InvalidToken:
            raise ValueError("sealed data cannot be opened with this key") from None


class OutboxMixin:
    """Columns of a service's ``outbox`` table. Declare ``class OutboxEvent(OutboxMixin, Base)``."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    event_id: Mapped[str] = mapped_column(String(36), unique=True)
    event_type: Mapped[str] = mapped_column(String(120))
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), index=True,
                                                          nullable=True)


class ProcessedEventMixin:
    """Ids of events a consumer group has handled: what makes redelivery harmless."""

    __tablename__ = "processed_events"

    consumer_group: Mapped[str] = mapped_column(String(80), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


def record_event(session: Session, outbox_model: type, envelope: Envelope) -> Envelope:
    """Write ``envelope`` to the outbox in ``session``'s transaction (commits with the state change)."""
    session.add(outbox_model(event_id=envelope.id, event_type=envelope.type,
                             payload=envelope.to_json()))
    return envelope
