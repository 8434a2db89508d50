"""A consumer process is SIGKILLed in the middle of a stream of 1,000 events, once between
a batch's commit and its XACK and once inside a batch's transaction; a second consumer
finishes. Every event's side effect is applied exactly once."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from services.common.app import make_redis
from services.common.db import Database
from services.common.events import Consumer, Envelope, OutboxRelay, record_event
from services.common.streams import dead_stream, events_stream
from tests.integration.event_consumer_proc import (
    GROUP,
    Base,
    Effect,
    Outbox,
    Processed,
    effect_handler,
)

REPO = Path(__file__).resolve().parents[2]
PROC = REPO / "tests" / "integration" / "event_consumer_proc.py"
TOTAL = 1000
KILL_AT = 137


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else value


def count(db: Database, model) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


@pytest.mark.slow
@pytest.mark.timeout(90)
def test_a_consumer_killed_mid_batch_loses_nothing_and_duplicates_nothing(
        database_url, redis_url, namespace, tmp_path):
    url = database_url("events")
    db = Database(url)
    Base.metadata.create_all(db.engine)
    client = make_redis(redis_url)
    stream = events_stream("test", namespace)

    with db.transaction() as session:
        published = {record_event(session, Outbox, Envelope.new("test.tick", "test", {"i": i})).id
                     for i in range(TOTAL)}
    relay = OutboxRelay(db, Outbox, client, stream)
    while relay.relay_once():
        pass
    assert client.xlen(stream) == TOTAL

    log_path = tmp_path / "doomed-consumer.log"
    with open(log_path, "wb") as log_file:
        doomed = subprocess.Popen(
            [sys.executable, str(PROC), "--db-url", url, "--redis-url", redis_url,
             "--namespace", namespace, "--consumer", "doomed", "--sleep", "0.006",
             "--batch-size", "50", "--hang-after", str(KILL_AT)],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            # The KILL_AT-th event stalls after the commit of its batch (entries 101-150,
            # one transaction), before the batch's XACK: all 50 stay pending, committed.
            while count(db, Effect) < KILL_AT:
                assert doomed.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the consumer process made no progress"
                time.sleep(0.005)
        finally:
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)

    batch_end = (KILL_AT // 50 + 1) * 50
    assert count(db, Effect) == batch_end, "a batch commits as one transaction"
    left_pending = client.xpending_range(stream, GROUP, "-", "+", 100, consumername="doomed")
    assert len(left_pending) == 50
    with db.read() as session:
        for item in left_pending:
            entry_id = _text(item["message_id"])
            [(_, fields)] = client.xrange(stream, entry_id, entry_id)
            assert session.get(Processed, (GROUP, Envelope.from_json(fields[b"envelope"]).id))

    # A second doomed consumer is killed while a batch's transaction is open (each
    # event sleeps inside it): that batch rolls back and stays pending, uncommitted.
    with open(log_path, "ab") as log_file:
        doomed = subprocess.Popen(
            [sys.executable, str(PROC), "--db-url", url, "--redis-url", redis_url,
             "--namespace", namespace, "--consumer", "doomed-2", "--sleep", "0.02",
             "--batch-size", "50"],
            cwd=REPO, stdout=log_file, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while count(db, Effect) < batch_end + 50:  # its first batch committed
                assert doomed.poll() is None, log_path.read_text()
                assert time.monotonic() < deadline, "the second process made no progress"
                time.sleep(0.005)
            # Its after-commit pauses take ~0.5 s, then ~0.5 s inside the next transaction.
            time.sleep(0.75)
        finally:
            os.kill(doomed.pid, signal.SIGKILL)
            doomed.wait(10)
    assert count(db, Effect) % 50 == 0, "no part of a batch is committed"
    assert client.xpending_range(stream, GROUP, "-", "+", 100, consumername="doomed-2")

    rescuer = Consumer(db, client, GROUP, [stream], effect_handler(), Processed,
                       consumer_name="rescuer", claim_idle_ms=200, block_ms=50,
                       namespace=namespace)
    deadline = time.monotonic() + 40
    while count(db, Processed) < TOTAL or client.xpending(stream, GROUP)["pending"]:
        assert time.monotonic() < deadline, "the second consumer did not finish the batch"
        rescuer.process_once()

    with db.read() as session:
        applied = dict(session.execute(
            select(Effect.event_id, func.count()).group_by(Effect.event_id)).all())
    assert set(applied) == published, "no event lost"
    assert [event_id for event_id, n in applied.items() if n != 1] == [], "none applied twice"
    assert count(db, Processed) == TOTAL
    assert client.xpending(stream, GROUP)["pending"] == 0
    assert client.xlen(dead_stream(GROUP, namespace)) == 0
    client.close()
    db.dispose()
