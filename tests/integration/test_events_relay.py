"""The transactional outbox and its relay to Redis Streams, on a real database and Redis."""

from __future__ import annotations

import json
import logging
import threading
import time
from datetime import timedelta

import pytest
import redis
from sqlalchemy import func, select, update

from services.common.app import make_redis
from services.common.db import Database
from services.common.events import Envelope, OutboxRelay, record_event, utcnow
from services.common.streams import events_stream
from tests.integration.event_consumer_proc import Account, Base, Outbox


@pytest.fixture
def db(database_url):
    database = Database(database_url("events"))
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def stream(namespace):
    return events_stream("test", namespace)


def open_account(db: Database, name: str, **data) -> Envelope:
    """A use case: a state change and its event in one transaction."""
    with db.transaction() as session:
        session.add(Account(name=name))
        return record_event(session, Outbox, Envelope.new(
            "test.account.opened", "test", {"name": name, **data}))


def unpublished(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(Outbox)
                              .where(Outbox.published_at.is_(None)))


def stream_envelopes(client: redis.Redis, stream: str) -> list[Envelope]:
    return [Envelope.from_json(fields[b"envelope"]) for _, fields in client.xrange(stream)]


def test_relay_publishes_in_order_and_marks_rows_published(db, redis_client, stream):
    sent = [open_account(db, f"acct-{i}") for i in range(5)]
    relay = OutboxRelay(db, Outbox, redis_client, stream, batch_size=2)

    assert [relay.relay_once() for _ in range(4)] == [2, 2, 1, 0]

    entries = redis_client.xrange(stream)
    assert [set(fields) for _, fields in entries] == [{b"envelope"}] * 5
    assert stream_envelopes(redis_client, stream) == sent
    assert unpublished(db) == 0


def test_with_redis_unreachable_the_change_commits_and_the_event_waits_then_is_delivered(
        db, redis_client, stream, caplog):
    relay_without_redis = OutboxRelay(db, Outbox, make_redis("redis://127.0.0.1:1/0"), stream)

    envelope = open_account(db, "alice", note="CONFIDENTIAL-PAYLOAD-VALUE")
    with caplog.at_level(logging.WARNING, logger="portico.events"):
        assert relay_without_redis.relay_once() == 0
        assert relay_without_redis.relay_once() == 0

    with db.read() as session:
        assert session.scalars(select(Account.name)).all() == ["alice"]
    assert unpublished(db) == 1
    assert redis_client.exists(stream) == 0
    warnings = [r for r in caplog.records if r.name == "portico.events"]
    assert len(warnings) == 1, "one warning per outage, not one per poll"
    assert "CONFIDENTIAL-PAYLOAD-VALUE" not in caplog.text
    assert envelope.id not in caplog.text

    relay = OutboxRelay(db, Outbox, redis_client, stream)
    assert relay.relay_once() == 1
    assert stream_envelopes(redis_client, stream) == [envelope]
    assert unpublished(db) == 0


def test_relay_recovers_on_the_same_client_when_redis_comes_back(db, redis_client, stream):
    """The same relay object keeps working once its Redis answers again."""
    relay = OutboxRelay(db, Outbox, make_redis("redis://127.0.0.1:1/0"), stream)
    open_account(db, "bob")
    assert relay.relay_once() == 0

    relay.redis = redis_client  # Redis is back (as far as this relay can tell)
    assert relay.relay_once() == 1
    assert unpublished(db) == 0


def test_relay_trims_the_stream_approximately(db, redis_client, stream):
    with db.transaction() as session:
        for i in range(300):
            record_event(session, Outbox, Envelope.new("test.tick", "test", {"i": i}))
    relay = OutboxRelay(db, Outbox, redis_client, stream, batch_size=300, maxlen=100)

    assert relay.relay_once() == 300
    # Approximate trimming removes whole nodes only: shorter than 300, at least 100.
    assert 100 <= redis_client.xlen(stream) < 300


def test_purge_deletes_only_rows_published_before_the_cutoff(db, redis_client, stream):
    old, recent = open_account(db, "old"), open_account(db, "recent")
    OutboxRelay(db, Outbox, redis_client, stream).relay_once()
    waiting = open_account(db, "waiting")
    with db.transaction() as session:
        session.execute(update(Outbox).where(Outbox.event_id == old.id)
                        .values(published_at=utcnow() - timedelta(days=10)))

    relay = OutboxRelay(db, Outbox, redis_client, stream)
    assert relay.purge_published(timedelta(days=7)) == 1

    with db.read() as session:
        assert set(session.scalars(select(Outbox.event_id))) == {recent.id, waiting.id}


def test_run_relays_until_stopped(db, redis_client, stream):
    relay = OutboxRelay(db, Outbox, redis_client, stream)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,), kwargs={"interval": 0.02})
    thread.start()
    try:
        envelope = open_account(db, "carol")
        deadline = time.monotonic() + 5
        while not redis_client.xlen(stream) and time.monotonic() < deadline:
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(5)
    assert not thread.is_alive()
    assert stream_envelopes(redis_client, stream) == [envelope]


def test_two_relays_racing_on_one_outbox_publish_each_row_once(db, redis_url, stream):
    total = 400
    with db.transaction() as session:
        for i in range(total):
            record_event(session, Outbox, Envelope.new("test.tick", "test", {"i": i}))
    start = threading.Barrier(2)
    errors: list[BaseException] = []

    def drain() -> None:
        relay = OutboxRelay(db, Outbox, make_redis(redis_url), stream, batch_size=15)
        start.wait()
        try:
            while unpublished(db):
                relay.relay_once()
        except BaseException as exc:  # surfaced by the assertion below
            errors.append(exc)

    threads = [threading.Thread(target=drain) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert errors == []
    client = make_redis(redis_url)
    ids = [json.loads(fields[b"envelope"])["id"] for _, fields in client.xrange(stream)]
    assert len(ids) == total
    assert len(set(ids)) == total
    assert unpublished(db) == 0
