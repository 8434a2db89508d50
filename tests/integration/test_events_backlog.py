"""A consumer group's backlog, as a worker's scrape reports it (real Redis)."""

from __future__ import annotations

import redis
from prometheus_client import CollectorRegistry, generate_latest

from services.common.backlog import ConsumerBacklog, entry_time
from services.common.config import load
from services.common.streams import dead_stream, events_stream
from services.common.worker import build_service_worker
from services.permissions.settings import PermissionsSettings
from tests.support import free_port


def _scrape(client: redis.Redis, group: str, streams: list[str], dead: str,
            clock=None) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(ConsumerBacklog(client, group, streams, dead,
                                      **({"clock": clock} if clock else {})))
    return registry


def _redis_major(client: redis.Redis) -> int:
    return int(str(client.info("server")["redis_version"]).split(".")[0])


def test_pending_entries_their_oldest_age_undelivered_and_dead_letters(redis_client, namespace):
    stream = events_stream("identity", namespace)
    dead = dead_stream("tracking", namespace)
    redis_client.xgroup_create(stream, "tracking", id="0", mkstream=True)
    ids = [redis_client.xadd(stream, {"envelope": str(n)}) for n in range(3)]
    # A consumer took two entries and acknowledged neither (still handling, or crashed).
    redis_client.xreadgroup("tracking", "c1", {stream: ">"}, count=2)
    redis_client.xadd(dead, {"entry_id": "0-1"})
    labels = {"group": "tracking", "stream": stream}
    registry = _scrape(redis_client, "tracking", [stream], dead,
                       clock=lambda: entry_time(ids[0]) + 42)

    assert registry.get_sample_value("portico_events_backlog_readable", {"group": "tracking"}) == 1
    assert registry.get_sample_value("portico_events_pending", labels) == 2
    assert registry.get_sample_value("portico_events_oldest_pending_age_seconds", labels) == 42
    assert registry.get_sample_value("portico_events_dead_letter_entries",
                                     {"group": "tracking"}) == 1
    undelivered = registry.get_sample_value("portico_events_undelivered", labels)
    # XINFO GROUPS reports a group's lag from Redis 7 on (make run's embedded one is 6.2).
    assert undelivered == (1 if _redis_major(redis_client) >= 7 else None)

    redis_client.xack(stream, "tracking", ids[0], ids[1])
    after = _scrape(redis_client, "tracking", [stream], dead)
    assert after.get_sample_value("portico_events_pending", labels) == 0
    assert after.get_sample_value("portico_events_oldest_pending_age_seconds", labels) == 0


def test_a_group_not_created_yet_reads_as_an_empty_backlog(redis_client, namespace):
    stream = events_stream("identity", namespace)
    redis_client.xadd(stream, {"envelope": "{}"})  # the stream exists; the group does not
    missing = events_stream("permissions", namespace)  # neither does this stream
    registry = _scrape(redis_client, "tracking", [stream, missing],
                       dead_stream("tracking", namespace))
    for name in (stream, missing):
        labels = {"group": "tracking", "stream": name}
        assert registry.get_sample_value("portico_events_pending", labels) == 0
        assert registry.get_sample_value("portico_events_undelivered", labels) is None
    assert registry.get_sample_value("portico_events_dead_letter_entries",
                                     {"group": "tracking"}) == 0


def test_redis_away_reports_unreadable_and_no_figures_that_could_pass_for_fine():
    away = redis.Redis(port=free_port(), socket_connect_timeout=0.5, socket_timeout=0.5)
    registry = _scrape(away, "tracking", ["portico.events.identity"], "portico.dead.tracking")

    text = generate_latest(registry).decode()  # the scrape itself answers
    assert registry.get_sample_value("portico_events_backlog_readable", {"group": "tracking"}) == 0
    assert "portico_events_pending{" not in text
    assert "portico_events_oldest_pending_age_seconds{" not in text


def test_a_consuming_service_worker_serves_its_backlog(database_url, redis_url, namespace,
                                                        redis_client):
    settings = load(PermissionsSettings, {"DATABASE_URL": database_url("permissions"),
                                          "REDIS_URL": redis_url, "REDIS_NAMESPACE": namespace})
    metrics = CollectorRegistry()
    build_service_worker("permissions", settings, redis_client=redis_client, environ={},
                         metrics=metrics)
    stream = events_stream("identity", namespace)  # permissions reads identity's events
    redis_client.xgroup_create(stream, "permissions", id="0", mkstream=True)
    redis_client.xadd(stream, {"envelope": "{}"})
    redis_client.xreadgroup("permissions", "c1", {stream: ">"})

    assert metrics.get_sample_value("portico_events_pending",
                                    {"group": "permissions", "stream": stream}) == 1
