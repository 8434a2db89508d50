"""Consumers on a consumer group: ack after commit, idempotent redelivery, retries,
dead letters, reclaiming from a dead consumer. Real Redis, real database."""

from __future__ import annotations

import logging
import threading
import time

import pytest
from prometheus_client import CollectorRegistry
from sqlalchemy import func, select

from services.common.db import Database
from services.common.events import Consumer, Envelope, HandlerRegistry
from services.common.streams import dead_stream, events_stream, key
from tests.integration.event_consumer_proc import GROUP, Base, Effect, Processed, effect_handler


@pytest.fixture
def db(database_url):
    database = Database(database_url("events"))
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def stream(namespace):
    return events_stream("test", namespace)


@pytest.fixture
def consumer_for(db, redis_client, namespace, stream):
    def factory(handler=None, **options) -> Consumer:
        options.setdefault("block_ms", 50)
        options.setdefault("retry_backoff", (0.01,))
        consumer = Consumer(db, redis_client, GROUP, options.pop("streams", [stream]),
                            handler or effect_handler(), Processed, namespace=namespace,
                            **options)
        consumer.ensure_groups()
        return consumer

    return factory


def publish(redis_client, stream: str, envelope: Envelope) -> str:
    return redis_client.xadd(stream, {"envelope": envelope.to_json()}).decode()


def effects(db: Database) -> list[str]:
    with db.read() as session:
        return list(session.scalars(select(Effect.event_id).order_by(Effect.id)))


def pending(redis_client, stream: str) -> int:
    return redis_client.xpending(stream, GROUP)["pending"]


def dead_letters(redis_client, namespace: str) -> list[dict[str, str]]:
    return [{k.decode(): v.decode() for k, v in fields.items()}
            for _, fields in redis_client.xrange(dead_stream(GROUP, namespace))]


def test_handles_commits_and_acknowledges(db, redis_client, stream, consumer_for):
    envelope = Envelope.new("test.account.opened", "test", {"name": "alice"})
    publish(redis_client, stream, envelope)
    registry = CollectorRegistry()

    assert consumer_for(registry=registry).process_once() == 1

    assert effects(db) == [envelope.id]
    assert pending(redis_client, stream) == 0
    with db.read() as session:
        assert session.get(Processed, (GROUP, envelope.id)) is not None
    assert registry.get_sample_value("portico_events_handled_total", {
        "group": GROUP, "type": "test.account.opened", "outcome": "handled"}) == 1


def test_a_redelivered_event_applies_its_side_effect_once(db, redis_client, stream,
                                                          consumer_for):
    envelope = Envelope.new("test.account.opened", "test")
    publish(redis_client, stream, envelope)
    publish(redis_client, stream, envelope)  # the relay published it twice
    consumer = consumer_for()

    assert consumer.process_once() == 2
    publish(redis_client, stream, envelope)  # and once more, much later
    assert consumer.process_once() == 1

    assert effects(db) == [envelope.id]
    assert pending(redis_client, stream) == 0


def test_a_failing_handler_is_retried_then_dead_lettered_with_its_error(
        db, redis_client, namespace, stream, consumer_for, caplog):
    attempts: list[str] = []

    def failing(session, envelope):
        session.add(Effect(event_id=envelope.id))  # must be rolled back every time
        attempts.append(envelope.id)
        raise RuntimeError(f"ledger unavailable (attempt {len(attempts)})")

    envelope = Envelope.new("test.account.opened", "test", {"name": "SECRET-DATA-VALUE"},
                            sealed="SEALED-CIPHERTEXT")
    entry_id = publish(redis_client, stream, envelope)
    consumer = consumer_for(failing, max_deliveries=3, claim_idle_ms=30,
                            retry_backoff=(0.01, 0.01))

    with caplog.at_level(logging.INFO):
        deadline = time.monotonic() + 10
        while not dead_letters(redis_client, namespace) and time.monotonic() < deadline:
            consumer.process_once()
            time.sleep(0.04)

    [dead] = dead_letters(redis_client, namespace)
    assert len(attempts) == 3 * 3, "3 deliveries, each tried 3 times in process"
    assert dead["error"] == "RuntimeError: ledger unavailable (attempt 9)"
    assert dead["deliveries"] == "3"
    assert dead["stream"] == stream
    assert dead["entry_id"] == entry_id
    assert dead["group"] == GROUP
    assert Envelope.from_json(dead["envelope"]) == envelope
    assert pending(redis_client, stream) == 0
    assert redis_client.exists(key(namespace, "event-errors", GROUP)) == 0
    assert effects(db) == []
    with db.read() as session:
        assert session.scalar(select(func.count()).select_from(Processed)) == 0
    logged = " ".join(str(vars(record)) for record in caplog.records)  # message and extras
    assert envelope.id in logged
    assert "SECRET-DATA-VALUE" not in logged
    assert "SEALED-CIPHERTEXT" not in logged


def test_a_handler_that_fails_once_succeeds_on_its_in_process_retry(db, redis_client, stream,
                                                                    consumer_for):
    failures = [RuntimeError("transient")]

    def flaky(session, envelope):
        if failures:
            raise failures.pop()
        session.add(Effect(event_id=envelope.id))

    envelope = Envelope.new("test.account.opened", "test")
    publish(redis_client, stream, envelope)

    assert consumer_for(flaky).process_once() == 1
    assert effects(db) == [envelope.id]
    assert pending(redis_client, stream) == 0


def test_an_entry_delivered_too_often_is_dead_lettered_without_calling_the_handler(
        db, redis_client, namespace, stream, consumer_for):
    """A poison event that kills its consumer each time never reaches a handler again."""
    envelope = Envelope.new("test.account.opened", "test")
    entry_id = publish(redis_client, stream, envelope)
    consumer = consumer_for(claim_idle_ms=1, max_deliveries=2)
    redis_client.xreadgroup(GROUP, "crashed-consumer", {stream: ">"})
    redis_client.xclaim(stream, GROUP, "crashed-consumer", 0, [entry_id], retrycount=2)
    time.sleep(0.01)

    assert consumer.process_once() == 1

    [dead] = dead_letters(redis_client, namespace)
    assert dead["deliveries"] == "3"
    assert dead["error"] == "delivered 3 times without being handled"
    assert effects(db) == []
    assert pending(redis_client, stream) == 0


@pytest.mark.parametrize("fields, reason", [
    ({"envelope": "{not json"}, "malformed entry: envelope is not JSON"),
    ({"envelope": '{"id": "x"}'}, "malformed entry: envelope lacks type, source, occurred_at"),
    ({"something": "else"}, "malformed entry: entry has no 'envelope' field"),
])
def test_a_malformed_entry_is_dead_lettered_at_once(db, redis_client, namespace, stream,
                                                    consumer_for, fields, reason):
    redis_client.xadd(stream, fields)

    assert consumer_for(max_deliveries=5).process_once() == 1

    [dead] = dead_letters(redis_client, namespace)
    assert dead["error"].startswith(reason)
    assert dead["deliveries"] == "1"
    assert effects(db) == []
    assert pending(redis_client, stream) == 0


def test_entries_pending_on_a_dead_consumer_are_reclaimed(db, redis_client, stream,
                                                          consumer_for):
    envelopes = [Envelope.new("test.account.opened", "test") for _ in range(3)]
    for envelope in envelopes:
        publish(redis_client, stream, envelope)
    consumer = consumer_for(claim_idle_ms=100, consumer_name="survivor")
    redis_client.xreadgroup(GROUP, "dead-consumer", {stream: ">"}, count=2)

    assert consumer.process_once() == 1  # only the entry nobody had read yet
    assert pending(redis_client, stream) == 2
    time.sleep(0.12)
    assert consumer.process_once() == 2

    assert sorted(effects(db)) == sorted(e.id for e in envelopes)
    assert pending(redis_client, stream) == 0


def test_reads_every_subscribed_stream_and_ignores_types_nobody_handles(
        db, redis_client, namespace, consumer_for):
    registry = HandlerRegistry()
    registry.on("identity.user.activated")(effect_handler())
    identity, permissions = events_stream("identity", namespace), events_stream("permissions", namespace)
    activated = Envelope.new("identity.user.activated", "identity")
    unknown = Envelope.new("permissions.grant.added", "permissions")
    publish(redis_client, identity, activated)
    publish(redis_client, permissions, unknown)

    consumer = consumer_for(registry, streams=[identity, permissions])
    assert consumer.process_once() == 2

    assert effects(db) == [activated.id]
    assert pending(redis_client, identity) == pending(redis_client, permissions) == 0


def test_run_stops_when_asked_and_leaves_the_group(db, redis_client, stream, consumer_for):
    consumer = consumer_for(consumer_name="short-lived")
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    envelope = Envelope.new("test.account.opened", "test")
    publish(redis_client, stream, envelope)
    deadline = time.monotonic() + 5
    while not effects(db) and time.monotonic() < deadline:
        time.sleep(0.02)
    stop.set()
    thread.join(5)

    assert not thread.is_alive()
    assert effects(db) == [envelope.id]
    assert pending(redis_client, stream) == 0
    names = [c["name"] for c in redis_client.xinfo_consumers(stream, GROUP)]
    assert b"short-lived" not in names and "short-lived" not in names


def test_run_survives_redis_being_away(db, namespace, stream):
    from services.common.app import make_redis

    consumer = Consumer(db, make_redis("redis://127.0.0.1:1/0"), GROUP, [stream],
                        effect_handler(), Processed, namespace=namespace)
    stop = threading.Event()
    thread = threading.Thread(target=consumer.run, args=(stop,))
    thread.start()
    time.sleep(0.3)
    assert thread.is_alive()
    stop.set()
    thread.join(5)
    assert not thread.is_alive()


def test_a_poison_event_in_a_batch_rolls_back_alone_and_blocks_nothing(
        db, redis_client, namespace, stream, consumer_for):
    """One transaction per batch: the failing event's effect is rolled back and it stays
    pending; the batch is redone without it, so the others commit and are acknowledged."""
    envelopes = [Envelope.new("test.account.opened", "test", {"i": i}) for i in range(6)]
    poison = envelopes[2]
    entry_ids = [publish(redis_client, stream, e) for e in envelopes]
    calls: list[str] = []

    def handler(session, envelope):
        calls.append(envelope.id)
        session.add(Effect(event_id=envelope.id))
        if envelope.id == poison.id:
            session.flush()  # its effect reaches the database, inside the transaction
            raise RuntimeError("poison")

    consumer = consumer_for(handler, max_deliveries=2, claim_idle_ms=30,
                            retry_backoff=(0.01,))

    assert consumer.process_once() == 5

    assert sorted(effects(db)) == sorted(e.id for e in envelopes if e is not poison)
    assert calls.count(poison.id) == 2, "tried, then retried in process"
    # Before the poison: run, rolled back with it, run again; after it: run once.
    assert [calls.count(e.id) for e in envelopes if e is not poison] == [2, 2, 1, 1, 1]
    [left] = redis_client.xpending_range(stream, GROUP, "-", "+", 10)
    assert left["message_id"].decode() == entry_ids[2]
    with db.read() as session:
        assert session.get(Processed, (GROUP, poison.id)) is None
        assert session.scalar(select(func.count()).select_from(Processed)) == 5

    time.sleep(0.05)
    assert consumer.process_once() == 1  # its second delivery fails too: dead-lettered
    [dead] = dead_letters(redis_client, namespace)
    assert dead["error"] == "RuntimeError: poison"
    assert pending(redis_client, stream) == 0
    assert sorted(effects(db)) == sorted(e.id for e in envelopes if e is not poison)
