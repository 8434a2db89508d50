"""Entries that carried sealed secrets leave the stream once every reader group has
acknowledged them, and never before (issue 8: retention). Real Redis, real database."""

from __future__ import annotations

import pytest

from services.common.db import Database
from services.common.events import Consumer, Envelope, HandlerRegistry, Sealer
from services.common.sealed_retention import readers_by_stream
from services.common.streams import events_stream
from tests.integration.event_consumer_proc import Base, Processed

KEY = "cG9ydGljby1kZXYtc2VhbGluZy1rZXktMzItYnl0ZXM="


@pytest.fixture
def db(database_url):
    database = Database(database_url("events"))
    Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


@pytest.fixture
def stream(namespace):
    return events_stream("identity", namespace)


def consumer(db, redis_client, namespace, group, readers, **options) -> Consumer:
    made = Consumer(db, redis_client, group, [events_stream("identity", namespace)],
                    HandlerRegistry(), Processed, namespace=namespace, block_ms=50,
                    sealed_readers=readers, **options)
    made.ensure_groups()
    return made


def publish(redis_client, stream, sealed: bool) -> str:
    envelope = Envelope.new("identity.access_code.issued", "identity", {"email": "a@x.example"},
                            sealed=Sealer(KEY).seal({"access_code": "K7QM-3XR9"}) if sealed else None)
    return redis_client.xadd(stream, {"envelope": envelope.to_json()}).decode()


def ids_in(redis_client, stream) -> set[str]:
    return {entry_id.decode() for entry_id, _ in redis_client.xrange(stream)}


def test_readers_come_from_the_subscriptions_not_from_existing_groups(namespace):
    readers = readers_by_stream({"notifier": ("identity",), "tracking": ("identity", "tracking")},
                                namespace)
    assert readers[events_stream("identity", namespace)] == {"notifier", "tracking"}
    assert readers[events_stream("tracking", namespace)] == {"tracking"}


def test_sealed_entry_is_deleted_only_after_the_last_reader_acknowledges(
        db, redis_client, namespace, stream):
    readers = {stream: frozenset({"notifier", "tracking"})}
    notifier = consumer(db, redis_client, namespace, "notifier", readers)
    sealed_id = publish(redis_client, stream, sealed=True)
    plain_id = publish(redis_client, stream, sealed=False)

    assert notifier.process_once() == 2
    # tracking's group does not exist yet: it could still need the entry.
    assert ids_in(redis_client, stream) == {sealed_id, plain_id}

    tracking = consumer(db, redis_client, namespace, "tracking", readers)
    assert tracking.process_once() == 2
    assert ids_in(redis_client, stream) == {plain_id}, "sealed entry gone, the other kept"


def test_a_pending_entry_is_not_deleted(db, redis_client, namespace, stream):
    readers = {stream: frozenset({"notifier", "tracking"})}
    notifier = consumer(db, redis_client, namespace, "notifier", readers)
    tracking = consumer(db, redis_client, namespace, "tracking", readers, claim_idle_ms=1)
    sealed_id = publish(redis_client, stream, sealed=True)
    # A tracking consumer read it and died before acknowledging: it is pending there.
    redis_client.xreadgroup("tracking", "dead-consumer", {stream: ">"}, count=10)
    assert notifier.process_once() == 1
    assert sealed_id in ids_in(redis_client, stream)
    # The live tracking consumer reclaims and acknowledges it: now it may go.
    assert tracking.process_once() == 1
    assert sealed_id not in ids_in(redis_client, stream)
