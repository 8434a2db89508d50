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
import logging
import os
import random
import socket
import threading
import time
import uuid
import weakref
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import redis
from cryptography.fernet import Fernet, InvalidToken
from prometheus_client import CollectorRegistry, Counter
from sqlalchemy import DateTime, Integer, String, Text, delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped, Session, mapped_column

from .db import Database
from .streams import dead_stream as default_dead_stream
from .streams import key


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


log = logging.getLogger("portico.events")

# One set of counters per Prometheus registry, however many relays/consumers share it.
_METRICS: weakref.WeakKeyDictionary[CollectorRegistry, dict[str, Counter]] = (
    weakref.WeakKeyDictionary()
)


def _metrics(registry: CollectorRegistry | None) -> dict[str, Counter]:
    registry = registry or CollectorRegistry()
    found = _METRICS.get(registry)
    if found is None:
        found = {
            "published": Counter("portico_events_published_total",
                                 "Outbox rows relayed to a stream", ["stream"], registry=registry),
            "handled": Counter("portico_events_handled_total", "Events handled and acknowledged",
                               ["group", "type", "outcome"], registry=registry),
            "failed": Counter("portico_events_failed_total", "Handler attempts that raised",
                              ["group", "type"], registry=registry),
            "dead": Counter("portico_events_dead_lettered_total",
                            "Entries moved to the dead stream", ["group", "reason"],
                            registry=registry),
        }
        _METRICS[registry] = found
    return found


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


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


Handler = Callable[[Session, Envelope], Any]


class HandlerRegistry:
    """Maps event types to handlers: ``@registry.on("identity.user.activated")``.

    Calling the registry dispatches an envelope to every handler of its type, in the
    order they were registered; an event type nobody handles is ignored.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}

    def on(self, event_type: str) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self._handlers.setdefault(event_type, []).append(func)
            return func

        return register

    @property
    def types(self) -> list[str]:
        return sorted(self._handlers)

    def handles(self, event_type: str) -> bool:
        return event_type in self._handlers

    def __call__(self, session: Session, envelope: Envelope) -> None:
        for func in self._handlers.get(envelope.type, ()):
            func(session, envelope)


@dataclass
class _Entry:
    stream: str
    entry_id: str
    fields: dict[Any, Any]
    deliveries: int


class Consumer:
    """One consumer of ``group`` on ``streams`` (see the module docstring for the contract).

    A handler that raises is retried in process after each delay in ``retry_backoff``
    (with jitter), then left pending; it is reclaimed after ``claim_idle_ms`` and, on its
    ``max_deliveries``-th failed delivery, moved to the dead stream with its last error.
    Logs name only the event id and type, never ``data`` or ``sealed``.
    """

    def __init__(self, db: Database, redis_client: redis.Redis, group: str,
                 streams: Sequence[str], handler: Handler, processed_model: Any, *,
                 consumer_name: str | None = None, max_deliveries: int = 5,
                 claim_idle_ms: int = 30_000, block_ms: int = 1000, batch_size: int = 50,
                 dead_stream: str | None = None, namespace: str = "portico",
                 retry_backoff: Sequence[float] = (0.05, 0.2),
                 registry: CollectorRegistry | None = None) -> None:
        if max_deliveries < 1:
            raise ValueError("max_deliveries must be at least 1")
        self.db = db
        self.redis = redis_client
        self.group = group
        self.streams = list(streams)
        self.handler = handler
        self.processed_model = processed_model
        self.consumer_name = consumer_name or (
            f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}")
        self.max_deliveries = max_deliveries
        self.claim_idle_ms = claim_idle_ms
        self.block_ms = block_ms
        self.batch_size = batch_size
        self.dead_stream = dead_stream or default_dead_stream(group, namespace)
        self.errors_key = key(namespace, "event-errors", group)
        self.retry_backoff = tuple(retry_backoff)
        self._metrics = _metrics(registry)
        self._groups_ready = False
        self._claim_cursor = dict.fromkeys(self.streams, "0-0")

    # -- Redis plumbing -------------------------------------------------------------

    def ensure_groups(self) -> None:
        """Create the group on every stream (and the stream itself) if missing."""
        for stream in self.streams:
            try:
                self.redis.xgroup_create(stream, self.group, id="0", mkstream=True)
            except redis.ResponseError as exc:
                if "BUSYGROUP" not in str(exc):
                    raise
        self._groups_ready = True

    def _claim(self) -> list[_Entry]:
        """Take over entries idle longer than ``claim_idle_ms`` (from any consumer)."""
        entries: list[_Entry] = []
        for stream in self.streams:
            response = self.redis.xautoclaim(stream, self.group, self.consumer_name,
                                             min_idle_time=self.claim_idle_ms,
                                             start_id=self._claim_cursor[stream],
                                             count=self.batch_size)
            self._claim_cursor[stream] = _text(response[0])
            if len(response) > 2 and response[2]:
                # Redis 7 drops pending entries that were trimmed away: nothing left to handle.
                log.warning("pending entries were trimmed from the stream before being handled",
                            extra={"group": self.group, "stream": stream,
                                   "entry_ids": [_text(i) for i in response[2]]})
            claimed = [(i, f) for i, f in response[1] if i is not None]
            if not claimed:
                continue
            counts = self._delivery_counts(stream, [_text(i) for i, _ in claimed])
            entries.extend(_Entry(stream, _text(i), f or {}, counts.get(_text(i), 1))
                           for i, f in claimed)
        return entries

    def _delivery_counts(self, stream: str, ids: list[str]) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
        counts: dict[str, int] = {}
        for found in pipe.execute():
            for item in found:
                counts[_text(item["message_id"])] = int(item["times_delivered"])
        return counts

    def _read_new(self, block: bool) -> list[_Entry]:
        response = self.redis.xreadgroup(
            self.group, self.consumer_name, dict.fromkeys(self.streams, ">"),
            count=self.batch_size, block=(self.block_ms or None) if block else None)
        entries: list[_Entry] = []
        for stream, items in _stream_items(response):
            # A fresh entry has been delivered exactly once: no need to ask XPENDING.
            entries.extend(_Entry(_text(stream), _text(i), f or {}, 1) for i, f in items)
        return entries

    def _ack(self, entry: _Entry) -> None:
        pipe = self.redis.pipeline(transaction=True)
        pipe.xack(entry.stream, self.group, entry.entry_id)
        pipe.hdel(self.errors_key, f"{entry.stream}/{entry.entry_id}")
        pipe.execute()

    def _dead_letter(self, entry: _Entry, error: str, reason: str,
                     envelope: Envelope | None = None) -> None:
        fields: dict[Any, Any] = {_text(k): v for k, v in entry.fields.items()}
        fields.update(stream=entry.stream, entry_id=entry.entry_id, group=self.group,
                      deliveries=str(entry.deliveries), error=error[:2000])
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, fields)
        pipe.xack(entry.stream, self.group, entry.entry_id)
        pipe.hdel(self.errors_key, f"{entry.stream}/{entry.entry_id}")
        pipe.execute()
        self._metrics["dead"].labels(self.group, reason).inc()
        log.warning("event dead-lettered", extra={
            "group": self.group, "stream": entry.stream, "entry_id": entry.entry_id,
            "event_id": envelope.id if envelope else None,
            "event_type": envelope.type if envelope else None,
            "deliveries": entry.deliveries, "reason": reason})

    # -- processing -----------------------------------------------------------------

    def process_once(self, stop: threading.Event | None = None) -> int:
        """Reclaim stale entries, read new ones, handle each; the number of entries settled
        (acknowledged or dead-lettered). Stops between entries once ``stop`` is set."""
        if not self._groups_ready:
            self.ensure_groups()
        try:
            entries = self._claim()
            entries.extend(self._read_new(block=not entries))
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted or Redis lost its data
                self._groups_ready = False
            raise
        settled = 0
        for entry in entries:
            if stop is not None and stop.is_set():
                break  # the rest stay pending and are reclaimed after claim_idle_ms
            settled += self._process(entry)
        return settled

    def _process(self, entry: _Entry) -> int:
        if entry.deliveries > self.max_deliveries:
            error = self.redis.hget(self.errors_key, f"{entry.stream}/{entry.entry_id}")
            self._dead_letter(entry, _text(error) if error else
                              f"delivered {entry.deliveries} times without being handled",
                              "max_deliveries")
            return 1
        raw = entry.fields.get(b"envelope", entry.fields.get("envelope"))
        try:
            if raw is None:
                raise ValueError("entry has no 'envelope' field")
            envelope = Envelope.from_json(raw)
        except ValueError as exc:
            self._dead_letter(entry, f"malformed entry: {exc}", "malformed")
            return 1
        error = self._handle(envelope)
        if error is None:
            self._ack(entry)
            return 1
        if entry.deliveries >= self.max_deliveries:
            self._dead_letter(entry, error, "max_deliveries", envelope)
            return 1
        # Left pending: reclaimed after claim_idle_ms, with this error kept for the dead letter.
        self.redis.hset(self.errors_key, f"{entry.stream}/{entry.entry_id}", error[:2000])
        return 0

    def _handle(self, envelope: Envelope) -> str | None:
        """Run the handler with in-process retries; None on success, else the last error."""
        error = ""
        for attempt in range(len(self.retry_backoff) + 1):
            if attempt:
                delay = self.retry_backoff[attempt - 1]
                time.sleep(delay * random.uniform(0.5, 1.5))
            try:
                outcome = self._handle_once(envelope)
            except Exception as exc:
                error = f"{type(exc).__name__}: {exc}"
                self._metrics["failed"].labels(self.group, envelope.type).inc()
                log.warning("event handler failed", extra={
                    "group": self.group, "event_id": envelope.id, "event_type": envelope.type,
                    "attempt": attempt + 1, "error_type": type(exc).__name__})
                continue
            self._metrics["handled"].labels(self.group, envelope.type, outcome).inc()
            return None
        return error

    def _handle_once(self, envelope: Envelope) -> str:
        model = self.processed_model
        try:
            with self.db.transaction() as session:
                if session.get(model, (self.group, envelope.id)) is not None:
                    return "duplicate"
                # The processed row goes first: a concurrent duplicate then waits on its
                # primary key (PostgreSQL) before applying any side effect, and fails.
                session.add(model(consumer_group=self.group, event_id=envelope.id))
                session.flush()
                self.handler(session, envelope)
            return "handled"
        except IntegrityError:
            with self.db.read() as session:
                if session.get(model, (self.group, envelope.id)) is not None:
                    return "duplicate"
            raise

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the entry in hand is finished and acknowledged."""
        failures = 0
        while not stop.is_set():
            try:
                self.process_once(stop)
                failures = 0
            except Exception as exc:  # Redis or the database is away: back off and retry
                failures += 1
                log.warning("event consumer cannot poll", extra={
                    "group": self.group, "error_type": type(exc).__name__})
                stop.wait(min(5.0, 0.2 * 2 ** min(failures, 5)))
        self._forget_self()

    def _forget_self(self) -> None:
        """Drop this consumer's name from the group if it holds nothing pending."""
        try:
            for stream in self.streams:
                if self.redis.xpending_range(stream, self.group, "-", "+", 1,
                                             consumername=self.consumer_name):
                    return
            for stream in self.streams:
                self.redis.xgroup_delconsumer(stream, self.group, self.consumer_name)
        except redis.RedisError:
            pass


def _stream_items(response: Any) -> Iterable[tuple[Any, list[Any]]]:
    """``XREADGROUP`` answers a list of [stream, items] (RESP2) or a dict (RESP3)."""
    if not response:
        return []
    if isinstance(response, dict):
        return [(name, value[0] if value and isinstance(value[0], list) else value)
                for name, value in response.items()]
    return [(name, items) for name, items in response]
