"""Events: the envelope (DESIGN.md §3), sealing, the transactional outbox, its relay
to Redis Streams, and consumers on consumer groups.

Contract
--------
* A use case records an event with ``record_event(session, outbox_model, envelope)``
  inside the same ``db.transaction()`` as its state change.
* ``OutboxRelay.relay_once()`` moves committed outbox rows to
  ``<namespace>.events.<service>`` with ``XADD`` (field ``envelope`` = JSON) and marks
  them published. Several relays may run at once.
* ``Consumer`` (consumer.py, re-exported here) reads one or more streams in its own
  group, runs ``handler(session, envelope)`` inside a transaction (a savepoint per event
  within one transaction per batch) that also records the event id as processed,
  commits, then ``XACK``s. A redelivered event whose id is already
  processed is acknowledged without calling the handler again. Entries left pending
  (dead consumer, failed handler) are reclaimed with ``XAUTOCLAIM`` after
  ``claim_idle_ms``; an entry delivered ``max_deliveries`` times is moved to
  ``<namespace>.dead.<group>`` with its last error and acknowledged.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import Integer, String, Text, delete, select, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Database, UTCDateTime, is_postgresql
from .metrics import counter


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
        # Not dataclasses.asdict: it deep-copies ``data``, a cost paid on every event.
        return json.dumps({name: getattr(self, name) for name in _ENVELOPE_FIELDS},
                          separators=(",", ":"), sort_keys=True)

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


_ENVELOPE_FIELDS = tuple(Envelope.__dataclass_fields__)


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
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    published_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True,
                                                          nullable=True)


class ProcessedEventMixin:
    """Ids of events a consumer group has handled: what makes redelivery harmless."""

    __tablename__ = "processed_events"

    consumer_group: Mapped[str] = mapped_column(String(80), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    processed_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


def record_event(session: Session, outbox_model: type, envelope: Envelope) -> Envelope:
    """Write ``envelope`` to the outbox in ``session``'s transaction (commits with the state change)."""
    session.add(outbox_model(event_id=envelope.id, event_type=envelope.type,
                             payload=envelope.to_json()))
    return envelope


log = logging.getLogger("portico.events")

def _metrics(registry: CollectorRegistry | None) -> dict[str, Counter]:
    return {
        "published": counter(registry, "portico_events_published_total",
                             "Outbox rows relayed to a stream", ["stream"]),
        "handled": counter(registry, "portico_events_handled_total",
                           "Events handled and acknowledged", ["group", "type", "outcome"]),
        "failed": counter(registry, "portico_events_failed_total",
                          "Handler attempts that raised", ["group", "type"]),
        "dead": counter(registry, "portico_events_dead_lettered_total",
                        "Entries moved to the dead stream", ["group", "reason"]),
    }


class OutboxRelay:
    """Moves committed outbox rows to ``stream``, oldest first, and marks them published.

    Delivery is at least once: a crash between ``XADD`` and the commit that marks the
    rows publishes them again later, which consumers absorb by event id. On PostgreSQL
    the rows are taken ``FOR UPDATE SKIP LOCKED``, so several relays never publish the
    same row; on SQLite the write lock taken by ``BEGIN IMMEDIATE`` serialises them.
    """

    def __init__(self, db: Database, outbox_model: Any, redis_client: redis.Redis, stream: str,
                 batch_size: int = 100, *, maxlen: int | None = 1_000_000,
                 retention: timedelta | None = None,
                 registry: CollectorRegistry | None = None) -> None:
        self.db = db
        self.model = outbox_model
        self.redis = redis_client
        self.stream = stream
        self.batch_size = batch_size
        self.maxlen = maxlen
        self.retention = retention
        self._published = _metrics(registry)["published"].labels(stream)
        self._redis_down = False

    def relay_once(self) -> int:
        """Publish one batch; the number of rows published (0 when Redis is unreachable)."""
        model = self.model
        session = self.db.sessions()
        try:
            rows = session.execute(
                select(model.id, model.event_id, model.payload)
                .where(model.published_at.is_(None))
                .order_by(model.id)
                .limit(self.batch_size)
                .with_for_update(skip_locked=True)
            ).all()
            if not rows:
                session.rollback()
                return 0
            pipe = self.redis.pipeline(transaction=False)
            for row in rows:
                pipe.xadd(self.stream, {"envelope": row.payload}, maxlen=self.maxlen,
                          approximate=True)
            try:
                pipe.execute()
            except redis.RedisError as exc:
                session.rollback()
                self._report_down(exc)
                return 0
            session.execute(update(model).where(model.id.in_([r.id for r in rows]))
                            .values(published_at=utcnow()))
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()
        if self._redis_down:
            self._redis_down = False
            log.info("outbox relay reconnected", extra={"stream": self.stream})
        self._published.inc(len(rows))
        return len(rows)

    def _report_down(self, exc: Exception) -> None:
        # One warning per outage, not one per poll; the rows simply wait.
        if not self._redis_down:
            log.warning("outbox relay cannot reach redis; events wait in the outbox",
                        extra={"stream": self.stream, "error_type": type(exc).__name__})
        self._redis_down = True

    def purge_published(self, older_than: timedelta) -> int:
        """Delete rows published more than ``older_than`` ago; the number deleted."""
        cutoff = utcnow() - older_than
        with self.db.transaction() as session:
            result = session.execute(delete(self.model).where(self.model.published_at < cutoff))
        return int(getattr(result, "rowcount", 0) or 0)

    def run(self, stop: threading.Event, interval: float = 0.2) -> None:
        """Relay until ``stop`` is set; sleeps ``interval`` whenever the outbox is drained."""
        next_purge = time.monotonic()
        while not stop.is_set():
            try:
                published = self.relay_once()
                if self.retention is not None and time.monotonic() >= next_purge:
                    self.purge_published(self.retention)
                    next_purge = time.monotonic() + 3600
            except Exception as exc:  # the database is away: keep the worker alive
                log.warning("outbox relay failed", extra={"stream": self.stream,
                                                          "error_type": type(exc).__name__})
                published = 0
                stop.wait(min(5.0, interval * 10))
            if published < self.batch_size:
                stop.wait(interval)


def insert_ignoring_conflicts(session: Session, model: Any) -> Any:
    """``INSERT ... ON CONFLICT DO NOTHING`` for ``model`` on the session's database
    (PostgreSQL or SQLite): a row that would break a unique key is skipped, not an error.

    On PostgreSQL a conflicting row another transaction has not committed yet makes the
    insert wait for it, so the loser of a race inserts nothing instead of failing with
    an IntegrityError. Tell the outcome with ``.returning(<a column>)``: rowcount is -1
    for an ORM-enabled INSERT on psycopg.
    """
    from sqlalchemy.dialects import postgresql, sqlite

    if is_postgresql(session):
        return postgresql.insert(model).on_conflict_do_nothing()
    return sqlite.insert(model).on_conflict_do_nothing()


# The consumer side lives in consumer.py (it imports this module, hence the lazy lookup);
# ``from services.common.events import Consumer, HandlerRegistry`` keeps working.
_CONSUMER_NAMES = frozenset({"Consumer", "Handler", "HandlerRegistry"})


def __getattr__(name: str) -> Any:
    if name in _CONSUMER_NAMES:
        from . import consumer

        return getattr(consumer, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
