"""Consumers on Redis Streams consumer groups (DESIGN.md §3; contract in events.py).

A consumer handles what one read brings (up to ``batch_size`` entries) in ONE database
transaction: the processed-event rows of the batch in one ``INSERT ... ON CONFLICT DO
NOTHING RETURNING`` (the ids it returns are the new events; the others are duplicates),
then the handler. A :class:`HandlerRegistry` gets the new events in one ``handle_all``
call, so a service can register bulk handlers (``on_batch``) and preload what its
handlers look up (``before_batch``); a plain callable is called once per event.

* a batch handler that raises makes the batch run again event by event;
* an event whose handler raises makes the transaction roll back and run again without
  it, so the others still commit (their handlers ran twice, inside transactions: no
  effect is applied twice);
* after the commit the batch's successful entries are acknowledged in one round trip;
* the failed ones are retried in process (again batched) after each delay of
  ``retry_backoff``, then left pending with their error, reclaimed after
  ``claim_idle_ms`` and dead-lettered on their ``max_deliveries``-th failed delivery.

Savepoints (``session.begin_nested()``) per event were tried and rejected: SQLAlchemy
fires the session's ``after_commit`` hooks on every RELEASE SAVEPOINT, so hooks meant
for "after the data is visible" (permissions' cache invalidation) would run before the
batch commits. A batch without savepoints also saves two round trips per event.

A kill before the commit loses the whole batch's work and leaves every entry pending:
it is redone. A kill between the commit and the XACK leaves entries whose
processed-event row is committed: their redelivery is acknowledged without calling the
handler again. Either way each side effect is applied exactly once.
"""

from __future__ import annotations

import os
import random
import socket
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import redis
from prometheus_client import CollectorRegistry
from sqlalchemy.orm import Session

from . import events
from .db import Database
from .events import Envelope, insert_ignoring_conflicts, log, utcnow
from .sealed_retention import purge_sealed
from .streams import as_text, key
from .streams import dead_stream as default_dead_stream

Handler = Callable[[Session, Envelope], Any]
BatchHandler = Callable[[Session, list[Envelope]], Any]


class HandlerRegistry:
    """Maps event types to handlers: ``@registry.on("identity.user.activated")``.

    Calling the registry dispatches an envelope to every handler of its type, in the
    order they were registered; an event type nobody handles is ignored.

    ``@registry.on_batch(type, ...)`` registers a handler that takes a list: the consumer
    calls it once per batch with every event of those types, in stream order (after the
    per-event handlers of the batch). It must give the same result as handling the
    events one by one, which is what happens when the batch fails and the consumer
    looks for the event at fault.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, list[Handler]] = {}
        self._batch_handlers: list[tuple[frozenset[str], BatchHandler]] = []
        self._preparers: list[BatchHandler] = []

    def on(self, event_type: str) -> Callable[[Handler], Handler]:
        def register(func: Handler) -> Handler:
            self._handlers.setdefault(event_type, []).append(func)
            return func

        return register

    def on_batch(self, *event_types: str) -> Callable[[BatchHandler], BatchHandler]:
        def register(func: BatchHandler) -> BatchHandler:
            self._batch_handlers.append((frozenset(event_types), func))
            return func

        return register

    def before_batch(self, func: BatchHandler) -> BatchHandler:
        """Register ``func(session, envelopes)``, run before a batch is dispatched: a place
        to load in one query what the batch's handlers will look up one by one."""
        self._preparers.append(func)
        return func

    @property
    def types(self) -> list[str]:
        return sorted(set(self._handlers).union(*(t for t, _ in self._batch_handlers)))

    def handles(self, event_type: str) -> bool:
        return event_type in self._handlers or any(
            event_type in types for types, _ in self._batch_handlers)

    def __call__(self, session: Session, envelope: Envelope) -> None:
        self.handle_all(session, [envelope])

    def handle_all(self, session: Session, envelopes: list[Envelope]) -> None:
        """Dispatch a batch: the preparers, per-event handlers in order, then each batch
        handler once."""
        if len(envelopes) > 1:
            for prepare in self._preparers:
                prepare(session, envelopes)
        for envelope in envelopes:
            for func in self._handlers.get(envelope.type, ()):
                func(session, envelope)
        for types, batch_func in self._batch_handlers:
            mine = [e for e in envelopes if e.type in types]
            if mine:
                batch_func(session, mine)


@dataclass
class _Entry:
    stream: str
    entry_id: str
    fields: dict[Any, Any]
    deliveries: int
    envelope: Envelope | None = None




class Consumer:
    """One consumer of ``group`` on ``streams`` (see the module docstring for the contract).

    Logs name only the event id and type, never ``data`` or ``sealed``.
    """

    def __init__(self, db: Database, redis_client: redis.Redis, group: str,
                 streams: Sequence[str], handler: Handler, processed_model: Any, *,
                 consumer_name: str | None = None, max_deliveries: int = 5,
                 claim_idle_ms: int = 30_000, block_ms: int = 1000, batch_size: int = 50,
                 dead_stream: str | None = None, namespace: str = "portico",
                 retry_backoff: Sequence[float] = (0.05, 0.2),
                 registry: CollectorRegistry | None = None,
                 sealed_readers: Mapping[str, frozenset[str]] | None = None) -> None:
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
        self._metrics = events._metrics(registry)
        self._groups_ready = False
        self._claim_cursor = dict.fromkeys(self.streams, "0-0")
        # {stream: groups that must acknowledge} for deleting entries with sealed secrets.
        self.sealed_readers = dict(sealed_readers or {})

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
            self._claim_cursor[stream] = as_text(response[0])
            if len(response) > 2 and response[2]:
                # Redis 7 drops pending entries that were trimmed away: nothing left to handle.
                log.warning("pending entries were trimmed from the stream before being handled",
                            extra={"group": self.group, "stream": stream,
                                   "entry_ids": [as_text(i) for i in response[2]]})
            claimed = [(i, f) for i, f in response[1] if i is not None]
            if not claimed:
                continue
            counts = self._delivery_counts(stream, [as_text(i) for i, _ in claimed])
            entries.extend(_Entry(stream, as_text(i), f or {}, counts.get(as_text(i), 1))
                           for i, f in claimed)
        return entries

    def _delivery_counts(self, stream: str, ids: list[str]) -> dict[str, int]:
        pipe = self.redis.pipeline(transaction=False)
        for entry_id in ids:
            pipe.xpending_range(stream, self.group, min=entry_id, max=entry_id, count=1)
        counts: dict[str, int] = {}
        for found in pipe.execute():
            for item in found:
                counts[as_text(item["message_id"])] = int(item["times_delivered"])
        return counts

    def _read_new(self, block: bool) -> list[_Entry]:
        response = self.redis.xreadgroup(
            self.group, self.consumer_name, dict.fromkeys(self.streams, ">"),
            count=self.batch_size, block=(self.block_ms or None) if block else None)
        entries: list[_Entry] = []
        for stream, items in _stream_items(response):
            # A fresh entry has been delivered exactly once: no need to ask XPENDING.
            entries.extend(_Entry(as_text(stream), as_text(i), f or {}, 1) for i, f in items)
        return entries

    def _ack(self, entries: Sequence[_Entry]) -> None:
        """Acknowledge ``entries`` and forget their errors, in one round trip."""
        if not entries:
            return
        by_stream: dict[str, list[str]] = {}
        for entry in entries:
            by_stream.setdefault(entry.stream, []).append(entry.entry_id)
        pipe = self.redis.pipeline(transaction=True)
        for stream, ids in by_stream.items():
            pipe.xack(stream, self.group, *ids)
        pipe.hdel(self.errors_key, *(f"{e.stream}/{e.entry_id}" for e in entries))
        pipe.execute()

    def _dead_letter(self, entry: _Entry, error: str, reason: str) -> None:
        fields: dict[Any, Any] = {as_text(k): v for k, v in entry.fields.items()}
        fields.update(stream=entry.stream, entry_id=entry.entry_id, group=self.group,
                      deliveries=str(entry.deliveries), error=error[:2000])
        pipe = self.redis.pipeline(transaction=True)
        pipe.xadd(self.dead_stream, fields)
        pipe.xack(entry.stream, self.group, entry.entry_id)
        pipe.hdel(self.errors_key, f"{entry.stream}/{entry.entry_id}")
        pipe.execute()
        self._metrics["dead"].labels(self.group, reason).inc()
        envelope = entry.envelope
        log.warning("event dead-lettered", extra={
            "group": self.group, "stream": entry.stream, "entry_id": entry.entry_id,
            "event_id": envelope.id if envelope else None,
            "event_type": envelope.type if envelope else None,
            "deliveries": entry.deliveries, "reason": reason})

    # -- processing -----------------------------------------------------------------

    def process_once(self, stop: threading.Event | None = None) -> int:
        """Reclaim stale entries, read new ones, handle them as one batch; the number of
        entries settled (acknowledged or dead-lettered). Once ``stop`` is set no further
        in-process retry starts; what is left stays pending and is reclaimed later."""
        if not self._groups_ready:
            self.ensure_groups()
        try:
            entries = self._claim()
            entries.extend(self._read_new(block=not entries))
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # the stream was deleted or Redis lost its data
                self._groups_ready = False
            raise
        if stop is not None and stop.is_set():
            return 0  # read but not started: reclaimed after claim_idle_ms
        settled = 0
        ready: list[_Entry] = []
        for entry in entries:
            if self._screen(entry):
                ready.append(entry)
            else:
                settled += 1
        return settled + self._handle_batch(ready, stop)

    def _screen(self, entry: _Entry) -> bool:
        """Parse the entry; dead-letter it (and answer False) if it must not be handled."""
        if entry.deliveries > self.max_deliveries:
            error = self.redis.hget(self.errors_key, f"{entry.stream}/{entry.entry_id}")
            self._dead_letter(entry, as_text(error) if error else
                              f"delivered {entry.deliveries} times without being handled",
                              "max_deliveries")
            return False
        raw = entry.fields.get(b"envelope", entry.fields.get("envelope"))
        try:
            if raw is None:
                raise ValueError("entry has no 'envelope' field")
            entry.envelope = Envelope.from_json(raw)
        except ValueError as exc:
            self._dead_letter(entry, f"malformed entry: {exc}", "malformed")
            return False
        return True

    def _handle_batch(self, entries: list[_Entry], stop: threading.Event | None) -> int:
        """Handle ``entries`` with in-process retries of the failed ones; the number settled."""
        settled = 0
        errors: dict[str, str] = {}
        todo = entries
        for attempt in range(len(self.retry_backoff) + 1):
            if not todo:
                break
            if attempt:
                if stop is not None and stop.is_set():
                    break
                time.sleep(self.retry_backoff[attempt - 1] * random.uniform(0.5, 1.5))
            done, errors = self._attempt(todo, attempt + 1)
            self._ack(done)
            if self.sealed_readers:
                purge_sealed(self.redis, [(e.stream, e.entry_id) for e in done
                                          if e.envelope is not None and e.envelope.sealed],
                             self.sealed_readers)
            settled += len(done)
            todo = [e for e in todo if e.entry_id in errors]
        for entry in todo:
            error = errors.get(entry.entry_id, "stopped before the handler could run")
            if entry.deliveries >= self.max_deliveries:
                self._dead_letter(entry, error, "max_deliveries")
                settled += 1
            else:
                # Left pending: reclaimed after claim_idle_ms, its error kept for the dead letter.
                self.redis.hset(self.errors_key, f"{entry.stream}/{entry.entry_id}",
                                error[:2000])
        return settled

    def _attempt(self, entries: list[_Entry], attempt: int) -> tuple[list[_Entry], dict[str, str]]:
        """Handle ``entries`` in one transaction; the committed entries and the errors of
        the others (by entry id).

        The processed-event rows of the whole batch go in first, in one statement. A
        handler with ``handle_all`` (a :class:`HandlerRegistry`) then gets the new events
        in one call; should that raise, the transaction is redone event by event. When
        one event's handler raises, the transaction is rolled back and redone without
        it, so one poison event neither blocks nor undoes the rest of the batch.
        """
        errors: dict[str, str] = {}
        todo = list(entries)
        batched = callable(getattr(self.handler, "handle_all", None))
        while todo:
            outcomes: list[str] = []
            failure: tuple[_Entry, Exception] | None = None
            session = self.db.sessions()
            try:
                fresh = self._record_processed(session, todo)
                new: list[_Entry] = []
                for entry in todo:
                    assert entry.envelope is not None
                    if entry.envelope.id in fresh:
                        fresh.discard(entry.envelope.id)  # twice in one batch: once handled
                        new.append(entry)
                        outcomes.append("handled")
                    else:
                        outcomes.append("duplicate")
                if batched and len(new) > 1:
                    try:
                        self.handler.handle_all(session, [e.envelope for e in new])  # type: ignore[attr-defined]
                    except Exception as exc:
                        log.info("batch handler failed; handling the batch event by event",
                                 extra={"group": self.group, "error_type": type(exc).__name__})
                        session.rollback()
                        batched = False
                        continue
                else:
                    for entry in new:
                        try:
                            self.handler(session, entry.envelope)  # type: ignore[arg-type]
                        except Exception as exc:
                            failure = (entry, exc)
                            break
                if failure is None:
                    session.commit()
                else:
                    session.rollback()
            except Exception as exc:  # the commit itself failed, or the connection is gone
                session.rollback()
                if len(todo) == 1:
                    errors[todo[0].entry_id] = self._failed(todo[0], exc, attempt)
                    return [], errors
                done: list[_Entry] = []
                for entry in todo:  # find the culprit: each event alone
                    ok, failed = self._attempt([entry], attempt)
                    done += ok
                    errors.update(failed)
                return done, errors
            finally:
                session.close()
            if failure is None:
                for entry, outcome in zip(todo, outcomes, strict=True):
                    assert entry.envelope is not None
                    self._metrics["handled"].labels(self.group, entry.envelope.type,
                                                    outcome).inc()
                return todo, errors
            culprit, error = failure
            errors[culprit.entry_id] = self._failed(culprit, error, attempt)
            todo = [e for e in todo if e is not culprit]
        return [], errors

    def _record_processed(self, session: Session, entries: list[_Entry]) -> set[str]:
        """Insert the processed-event rows of ``entries``; the ids that were not there.

        A concurrent duplicate waits on the primary key (PostgreSQL) and then inserts
        nothing, so it never applies a side effect.
        """
        model = self.processed_model
        now = utcnow()
        rows = [{"consumer_group": self.group, "event_id": e.envelope.id, "processed_at": now}
                for e in entries if e.envelope is not None]
        # A parameter list (executemany, "insertmanyvalues"): one cached statement.
        table = model.__table__
        inserted = session.execute(
            insert_ignoring_conflicts(session, table).returning(table.c.event_id), rows)
        return set(inserted.scalars())

    def _failed(self, entry: _Entry, exc: BaseException, attempt: int) -> str:
        envelope = entry.envelope
        assert envelope is not None
        self._metrics["failed"].labels(self.group, envelope.type).inc()
        log.warning("event handler failed", extra={
            "group": self.group, "event_id": envelope.id, "event_type": envelope.type,
            "attempt": attempt, "error_type": type(exc).__name__})
        return f"{type(exc).__name__}: {exc}"

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; the batch in hand is finished and acknowledged."""
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
