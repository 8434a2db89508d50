"""The notifier worker killed mid-batch: nothing lost, nothing sent twice.

Real processes (``iamctl worker notifier``), a real database migrated with
Alembic, real Redis Streams and a real SMTP server that saves every message.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from services.common.db import Database, upgrade
from services.common.events import Envelope
from services.notifier.models import MessageStatus, OutgoingMessage
from tests.integration.helpers.notifier import SECRETS, person, sealed

REPO = Path(__file__).resolve().parents[2]
EVENTS = 200


def start_worker(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "services.cli", "worker", "notifier"], cwd=REPO,
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def sent_count(db: Database) -> int:
    with db.read() as session:
        return session.scalar(select(func.count()).select_from(OutgoingMessage)
                              .where(OutgoingMessage.status == MessageStatus.SENT))


def test_a_worker_killed_mid_batch_loses_nothing_and_sends_nothing_twice(
        database_url, redis_url, redis_client, namespace, smtp_sink):
    url = database_url("notifier")
    upgrade("notifier", url)
    db = Database(url)
    envelopes = []
    for i in range(EVENTS):
        if i % 4 == 0:  # a quarter carry a sealed secret
            envelopes.append(Envelope.new(
                "identity.password_reset.requested", "identity",
                {**person(f"u{i}", "es"), "expires_at": "2030-01-01T00:00:00+00:00"},
                subject=f"u{i}", sealed=sealed(reset_url=SECRETS["reset_url"])))
        else:
            envelopes.append(Envelope.new("identity.password.changed", "identity",
                                          {**person(f"u{i}", "en"), "via": "profile"},
                                          subject=f"u{i}"))
    for envelope in envelopes:
        redis_client.xadd(f"{namespace}.events.identity", {"envelope": envelope.to_json()})
    smtp_sink.handler.delay = 0.01  # ~2 s of sending: room to kill mid-batch

    env = {**os.environ, "DATABASE_URL": url, "REDIS_URL": redis_url,
           "REDIS_NAMESPACE": namespace, "SMTP_PORT": str(smtp_sink.port),
           "NOTIFY_DELIVERED_CHECK_DIR": str(smtp_sink.directory),
           "NOTIFY_SENDING_TIMEOUT_SECONDS": "1", "NOTIFY_POLL_SECONDS": "0.05",
           "NOTIFY_BATCH_SIZE": "10", "WORKER_CLAIM_IDLE_MS": "500", "LOG_LEVEL": "WARNING"}
    first = start_worker(env)
    deadline = time.monotonic() + 30
    while len(smtp_sink.messages) < 40 and time.monotonic() < deadline:
        assert first.poll() is None, first.stderr.read().decode()
        time.sleep(0.01)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    assert 40 <= len(smtp_sink.messages) < EVENTS, "the kill must land mid-batch"

    second = start_worker(env)
    try:
        deadline = time.monotonic() + 60
        while sent_count(db) < EVENTS and time.monotonic() < deadline:
            assert second.poll() is None, second.stderr.read().decode()
            time.sleep(0.1)
    finally:
        second.send_signal(signal.SIGTERM)
        _, stderr = second.communicate(timeout=20)
    assert second.returncode == 0, stderr.decode()

    with db.read() as session:
        rows = session.scalars(select(OutgoingMessage)).all()
        assert len(rows) == EVENTS
        assert {r.event_id for r in rows} == {e.id for e in envelopes}
        assert {r.status for r in rows} == {MessageStatus.SENT}
        message_ids = {r.message_id for r in rows}
        assert all(r.body_text is None for r in rows if r.carries_secret)
    received = smtp_sink.message_id_counts()
    assert set(received) == message_ids
    assert set(received.values()) == {1}, {k: v for k, v in received.items() if v > 1}
    assert smtp_sink.saved_message_id_counts() == received
    assert SECRETS["reset_url"] not in stderr.decode()
    db.dispose()
