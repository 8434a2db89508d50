"""The generic event worker of a service: its outbox relay when it publishes events and
its consumer group when it consumes them (``iamctl worker <service>``).

A service publishes by having ``OutboxEvent`` in its ``models`` module, and consumes
by having ``ProcessedEvent`` there and ``registry = HandlerRegistry()`` in its
``handlers`` module. Its group is named after it and reads the streams listed in
``streams.SUBSCRIPTIONS``. The handlers find the service's settings on their session
(``services.common.db.settings_of``). Two optional hooks:

* ``handlers.session_info(settings, redis) -> dict``: what else the handlers' sessions
  carry in ``session.info`` (e.g. permissions' cache invalidator);
* ``services.<service>.jobs.runnables(settings, db, redis, metrics=registry) -> list``
  adds the service's own loops (e.g. the notifier's email delivery), each with
  ``run(stop)``, their counters in ``registry`` (served with ``WORKER_METRICS_PORT``).

A consumer's backlog (pending, oldest pending age, undelivered, dead-lettered) is served
on the same port, read from Redis at each scrape (:mod:`services.common.backlog`).
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import signal
import sys
import threading
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from types import FrameType, ModuleType
from typing import Any, Protocol

from prometheus_client import CollectorRegistry, start_http_server

from .backlog import ConsumerBacklog
from .config import load, load_or_exit, parse_positive_int, setting
from .db import service_database
from .events import Consumer, HandlerRegistry, OutboxRelay
from .logging import configure_logging
from .sealed_retention import readers_by_stream
from .streams import SUBSCRIPTIONS, events_stream

log = logging.getLogger("portico.worker")


class Runnable(Protocol):
    def run(self, stop: threading.Event) -> None: ...


def _non_negative_int(raw: str) -> int:
    value = int(raw)
    if value < 0:
        raise ValueError("expected zero or a positive whole number")
    return value


@dataclasses.dataclass(frozen=True, kw_only=True)
class WorkerSettings:
    """How a worker relays and consumes (read with :func:`services.common.config.load`)."""

    max_deliveries: int = setting("WORKER_MAX_DELIVERIES", 5, parse_positive_int,
                                  help="deliveries of an event before it moves to the dead stream")
    claim_idle_ms: int = setting("WORKER_CLAIM_IDLE_MS", 30_000, parse_positive_int,
                                 help="idle time after which a pending event is reclaimed (ms)")
    relay_interval_ms: int = setting("WORKER_RELAY_INTERVAL_MS", 200, parse_positive_int,
                                     help="how often an idle outbox relay polls (ms)")
    stream_maxlen: int = setting("EVENT_STREAM_MAXLEN", 1_000_000, parse_positive_int,
                                 help="approximate length a stream is trimmed to on publish")
    outbox_retention_hours: int = setting("OUTBOX_RETENTION_HOURS", 168, _non_negative_int,
                                          help="published outbox rows are deleted after this long (0: kept)")
    stop_timeout_s: int = setting("WORKER_STOP_TIMEOUT", 15, parse_positive_int,
                                  help="seconds a stopping worker waits for its threads")
    batch_size: int = setting("WORKER_BATCH_SIZE", 200, parse_positive_int,
                              help="stream entries a consumer reads and commits as one batch")
    metrics_port: int = setting("WORKER_METRICS_PORT", 0, _non_negative_int,
                                help="port on which the worker serves Prometheus metrics at /metrics "
                                     "(events relayed, handled, failed, dead-lettered; its consumer "
                                     "group's backlog; the service's own loops); 0: off")
    heartbeat_file: str = setting("HEARTBEAT_FILE", "",
                                  help="file touched every second while every worker thread is alive "
                                       "(the Kubernetes liveness probe reads its age; empty: off)")


@dataclasses.dataclass
class _Relay:
    """Binds a relay's poll interval so every runnable has the same ``run(stop)`` shape."""

    relay: OutboxRelay
    interval: float

    def run(self, stop: threading.Event) -> None:
        self.relay.run(stop, interval=self.interval)


def _optional_module(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name != name:
            raise
        return None


def build_service_worker(service: str, settings: Any, worker: WorkerSettings | None = None,
                         *, environ: Mapping[str, str] | None = None,
                         redis_client: Any = None,
                         metrics: CollectorRegistry | None = None) -> list[Runnable]:
    """The relay of ``service``'s outbox if it has one and, if it has a handler registry,
    its consumer; their counters (and those of the service's own loops) in ``metrics``."""
    from .app import make_redis  # flask is only needed here, not by importers of worker

    worker = worker or load(WorkerSettings, environ)
    models = importlib.import_module(f"services.{service}.models")
    client = redis_client or make_redis(settings.redis_url)
    handlers = _optional_module(f"services.{service}.handlers")
    session_info = getattr(handlers, "session_info", None) if handlers else None
    db = service_database(settings, **(session_info(settings, client) if session_info else {}))
    namespace = settings.redis_namespace
    retention = (timedelta(hours=worker.outbox_retention_hours)
                 if worker.outbox_retention_hours else None)
    runnables: list[Runnable] = []
    outbox = getattr(models, "OutboxEvent", None)
    if outbox is not None:
        runnables.append(_Relay(
            OutboxRelay(db, outbox, client, events_stream(service, namespace),
                        maxlen=worker.stream_maxlen, retention=retention, registry=metrics),
            interval=worker.relay_interval_ms / 1000,
        ))
    registry = getattr(handlers, "registry", None) if handlers else None
    if isinstance(registry, HandlerRegistry):
        consumer = Consumer(
            db, client, group=service,
            streams=[events_stream(s, namespace) for s in SUBSCRIPTIONS.get(service, ())],
            handler=registry, processed_model=models.ProcessedEvent,
            max_deliveries=worker.max_deliveries, claim_idle_ms=worker.claim_idle_ms,
            batch_size=worker.batch_size, namespace=namespace,
            sealed_readers=readers_by_stream(SUBSCRIPTIONS, namespace), registry=metrics,
        )
        runnables.append(consumer)
        if metrics is not None:
            metrics.register(ConsumerBacklog(client, consumer.group, consumer.streams,
                                             consumer.dead_stream))
    jobs = _optional_module(f"services.{service}.jobs")
    if jobs is not None and callable(getattr(jobs, "runnables", None)):
        runnables.extend(jobs.runnables(settings, db, client, metrics=metrics))
    return runnables


def run_runnables(runnables: list[Runnable], stop: threading.Event,
                  stop_timeout: float, heartbeat_file: str = "") -> int:
    """Run each in a thread until ``stop`` is set or one dies; 0 on a clean stop.

    While every thread is alive, ``heartbeat_file`` (if given) is touched each second,
    so a liveness probe can tell a hung or half-dead worker from a healthy one.
    """
    crashed = threading.Event()

    def guarded(runnable: Runnable) -> None:
        try:
            runnable.run(stop)
        except Exception:
            log.exception("worker thread crashed", extra={"runnable": type(runnable).__name__})
            crashed.set()
            stop.set()

    threads = [threading.Thread(target=guarded, args=(r,), name=type(r).__name__, daemon=True)
               for r in runnables]
    for thread in threads:
        thread.start()
    heartbeat = Path(heartbeat_file) if heartbeat_file else None
    while not stop.wait(1.0):
        if heartbeat is not None and all(thread.is_alive() for thread in threads):
            heartbeat.touch()
    for thread in threads:
        thread.join(stop_timeout)
    if any(thread.is_alive() for thread in threads):
        log.warning("worker threads did not stop in time")
        return 1
    return 1 if crashed.is_set() else 0


def run_worker(service: str) -> int:
    """``iamctl worker <service>``: relay and consume until SIGTERM/SIGINT; the exit status."""
    module = importlib.import_module(f"services.{service}.settings")
    settings = load_or_exit(getattr(module, f"{service.capitalize()}Settings"))
    worker = load_or_exit(WorkerSettings)
    configure_logging(f"{service}-worker", settings.log_level, settings.log_json)
    stop = threading.Event()

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("worker stopping", extra={"signal": signal.Signals(signum).name})
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    metrics = CollectorRegistry()
    if worker.metrics_port:
        start_http_server(worker.metrics_port, registry=metrics)
        log.info("worker metrics served", extra={"port": worker.metrics_port})
    runnables = build_service_worker(service, settings, worker, metrics=metrics)
    log.info("worker started", extra={"runnables": [type(r).__name__ for r in runnables]})
    status = run_runnables(runnables, stop, worker.stop_timeout_s, worker.heartbeat_file)
    log.info("worker stopped", extra={"status": status})
    return status


if __name__ == "__main__":  # pragma: no cover - `python -m services.common.worker identity`
    sys.exit(run_worker(sys.argv[1]))
