"""The generic service worker: relay + consumer wiring, settings, graceful stop."""

from __future__ import annotations

import json
import os
import signal
import sys
import threading
import time
import types
from pathlib import Path

import pytest
import requests
from sqlalchemy import select

from services.common.config import ConfigError, load
from services.common.db import Database, settings_of
from services.common.events import Consumer, Envelope, HandlerRegistry, record_event
from services.common.streams import events_stream
from services.common.worker import WorkerSettings, build_service_worker, run_runnables
from services.identity.models import OutboxEvent as IdentityOutbox
from services.identity.settings import IdentitySettings
from services.identity.tables import identity_metadata
from tests.support import free_port, iamctl_worker

REPO = Path(__file__).resolve().parents[2]


def wait_for(condition, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_worker_settings_defaults_and_a_bad_value_names_the_variable():
    defaults = load(WorkerSettings, {})
    assert (defaults.max_deliveries, defaults.claim_idle_ms) == (5, 30_000)
    assert defaults.metrics_port == 0  # no port is opened unless asked for
    assert load(WorkerSettings, {"WORKER_CLAIM_IDLE_MS": "500"}).claim_idle_ms == 500

    with pytest.raises(ConfigError, match="WORKER_MAX_DELIVERIES"):
        load(WorkerSettings, {"WORKER_MAX_DELIVERIES": "0"})


def test_the_worker_relays_the_outbox_and_consumes_its_subscriptions(
        database_url, redis_url, redis_client, namespace, monkeypatch):
    """permissions consumes identity's stream (streams.SUBSCRIPTIONS)."""
    from services.permissions.models import Base as PermissionsBase
    from services.permissions.models import ProcessedEvent
    from services.permissions.settings import PermissionsSettings

    seen: list[str] = []
    configured: list[object] = []
    settings_seen: list[object] = []

    def on_activated(session, env):
        seen.append(env.id)
        settings_seen.append(settings_of(session))

    handlers = types.ModuleType("services.permissions.handlers")
    handlers.registry = HandlerRegistry()
    handlers.registry.on("identity.user.activated")(on_activated)
    handlers.session_info = lambda settings, client: configured.append(settings) or {}
    monkeypatch.setitem(sys.modules, "services.permissions.handlers", handlers)

    identity_db = Database(database_url("identity"))
    identity_metadata().create_all(identity_db.engine)
    permissions_db = Database(database_url("permissions"))
    PermissionsBase.metadata.create_all(permissions_db.engine)
    common = {"redis_url": redis_url, "redis_namespace": namespace}
    identity = build_service_worker(
        "identity", load(IdentitySettings, {}, database_url=identity_db.url, **common),
        load(WorkerSettings, {"WORKER_RELAY_INTERVAL_MS": "20"}))
    permissions_settings = load(PermissionsSettings, {}, database_url=permissions_db.url,
                                        **common)
    permissions = build_service_worker("permissions", permissions_settings,
                                       load(WorkerSettings, {}))
    [consumer] = [r for r in permissions if isinstance(r, Consumer)]
    assert consumer.group == "permissions"
    assert consumer.streams == [events_stream("identity", namespace)]
    assert configured == [permissions_settings]
    consumer.block_ms = 50

    with identity_db.transaction() as session:
        envelope = record_event(session, IdentityOutbox,
                                Envelope.new("identity.user.activated", "identity"))
    stop = threading.Event()
    statuses: list[int] = []
    thread = threading.Thread(
        target=lambda: statuses.append(run_runnables(identity + permissions, stop, 5)))
    thread.start()
    try:
        assert wait_for(lambda: seen == [envelope.id])
        assert settings_seen == [permissions_settings]

        def processed() -> bool:
            with permissions_db.read() as session:
                return session.get(ProcessedEvent, ("permissions", envelope.id)) is not None

        assert wait_for(processed)
    finally:
        stop.set()
        thread.join(10)
    assert statuses == [0]
    with identity_db.read() as session:
        assert session.scalar(select(IdentityOutbox.published_at)) is not None
    identity_db.dispose()
    permissions_db.dispose()


@pytest.mark.slow
def test_iamctl_worker_relays_and_stops_cleanly_on_sigterm(database_url, redis_url,
                                                           redis_client, namespace, tmp_path):
    db = Database(database_url("identity"))
    identity_metadata().create_all(db.engine)
    # As in a Kubernetes worker pod: the ConfigMap names a metrics directory under an
    # empty /tmp (the worker crashed on its first metric until iamctl made it).
    metrics_dir = tmp_path / "prometheus"
    metrics_port = free_port()
    env = {**os.environ, "DATABASE_URL": db.url, "REDIS_URL": redis_url,
           "REDIS_NAMESPACE": namespace, "LOG_JSON": "true", "WORKER_RELAY_INTERVAL_MS": "20",
           "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
           "WORKER_METRICS_PORT": str(metrics_port)}
    log_path = tmp_path / "worker.log"
    with iamctl_worker("identity", env, log_path) as worker:
        with db.transaction() as session:
            envelope = record_event(session, IdentityOutbox,
                                    Envelope.new("identity.user.activated", "identity"))
        stream = events_stream("identity", namespace)
        assert wait_for(lambda: redis_client.xlen(stream) == 1, 20), log_path.read_text()
        # What Prometheus scrapes from the worker pod: the relay counted the event (once
        # it committed the row as published, a moment after the XADD seen above).
        counted = f'portico_events_published_total{{stream="{stream}"}} 1.0'

        def scrape() -> requests.Response:
            return requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5)

        wait_for(lambda: counted in scrape().text, 10)
        scraped = scrape()
        assert scraped.status_code == 200
        assert counted in scraped.text
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(15) == 0, log_path.read_text()
    [(_, fields)] = redis_client.xrange(stream)
    assert Envelope.from_json(fields[b"envelope"]).id == envelope.id
    assert any(metrics_dir.glob("counter_*.db"))  # the relay's count, in multi-process mode
    db.dispose()
    lines = [json.loads(line) for line in log_path.read_text().splitlines() if line.startswith("{")]
    assert [line["msg"] for line in lines if line["logger"] == "portico.worker"][-1] == "worker stopped"


def test_a_service_without_an_outbox_runs_no_relay(database_url, redis_url, namespace):
    """The notifier publishes no event: its worker consumes and sends, and relays nothing."""
    from services.notifier.settings import NotifierSettings

    settings = load(NotifierSettings, {}, database_url=database_url("notifier"),
                    redis_url=redis_url, redis_namespace=namespace)
    runnables = build_service_worker("notifier", settings, load(WorkerSettings, {}))
    kinds = [type(r).__name__ for r in runnables]
    assert kinds == ["Consumer"] + ["Sender"] * settings.senders


def test_heartbeat_is_touched_while_every_thread_lives_and_not_after_one_dies(tmp_path):
    import threading
    import time

    from services.common.worker import run_runnables

    heartbeat = tmp_path / "heartbeat"

    class Dies:
        def __init__(self, after: float) -> None:
            self.after = after

        def run(self, stop: threading.Event) -> None:
            if stop.wait(self.after):
                return
            raise RuntimeError("boom")

    class Lives:
        def run(self, stop: threading.Event) -> None:
            stop.wait()

    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(
        run_runnables([Lives(), Dies(2.5)], stop, 5, str(heartbeat))))
    runner.start()
    time.sleep(1.6)
    assert heartbeat.exists(), "a healthy worker touches its heartbeat"
    runner.join(10)
    assert result == [1], "a crashed thread stops the worker with status 1"
    touched = heartbeat.stat().st_mtime
    time.sleep(1.2)
    assert heartbeat.stat().st_mtime == touched
