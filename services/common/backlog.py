"""A consumer group's backlog as Prometheus gauges, read from Redis at scrape time.

The worker's counters say what was handled; they cannot say what is *waiting*: a
consumer that stopped making progress (a poison event retried, a database away, a
crashed pod whose entries wait for ``claim_idle_ms``) counts nothing at all. What is
waiting lives in Redis, so it is read there, once per scrape, by a collector on the
worker's registry (a gauge set in a loop would go stale with the loop it measures):

* ``portico_events_pending{group, stream}``: entries delivered to the group and not yet
  acknowledged (``XPENDING``);
* ``portico_events_oldest_pending_age_seconds{group, stream}``: how long ago the oldest
  of those was added to the stream (its id's time; 0 when none is pending), the figure
  to alert on: it only grows while an entry is stuck;
* ``portico_events_undelivered{group, stream}``: entries in the stream not yet delivered
  to the group (``XINFO GROUPS`` ``lag``; Redis >= 7 only, and only when Redis can
  tell: absent otherwise, e.g. on ``make run``'s embedded Redis 6.2);
* ``portico_events_dead_letter_entries{group}``: entries in the group's dead stream,
  waiting for someone to look at them (docs/operations.md §8).

If Redis does not answer, the scrape reports ``portico_events_backlog_readable{group}``
0 and none of the others (an alert on the age must not read a missing series as fine).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import redis
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from .streams import as_text

log = logging.getLogger("portico.events")


def entry_time(entry_id: object) -> float:
    """The time (Unix seconds) at which Redis added the stream entry ``entry_id``
    (``<milliseconds>-<sequence>``)."""
    return int(as_text(entry_id).split("-", 1)[0]) / 1000


class ConsumerBacklog(Collector):
    """The backlog of consumer group ``group`` on ``streams`` and its ``dead_stream``."""

    def __init__(self, client: redis.Redis, group: str, streams: Sequence[str],
                 dead_stream: str, *, clock: Callable[[], float] = time.time) -> None:
        self.redis = client
        self.group = group
        self.streams = list(streams)
        self.dead_stream = dead_stream
        self.clock = clock

    def collect(self) -> Iterator[GaugeMetricFamily]:
        readable = GaugeMetricFamily(
            "portico_events_backlog_readable",
            "1 if this scrape could read the consumer group's backlog from Redis", labels=["group"])
        try:
            families = self._read()
        except redis.RedisError as exc:
            log.warning("consumer backlog unreadable",
                        extra={"group": self.group, "error_type": type(exc).__name__})
            readable.add_metric([self.group], 0)
            yield readable
            return
        readable.add_metric([self.group], 1)
        yield readable
        yield from families

    def _read(self) -> list[GaugeMetricFamily]:
        labels = ["group", "stream"]
        pending = GaugeMetricFamily(
            "portico_events_pending",
            "Entries delivered to the consumer group and not yet acknowledged", labels=labels)
        oldest = GaugeMetricFamily(
            "portico_events_oldest_pending_age_seconds",
            "Age of the oldest entry the consumer group has not acknowledged (0: none)",
            labels=labels)
        undelivered = GaugeMetricFamily(
            "portico_events_undelivered",
            "Entries in the stream not yet delivered to the consumer group (Redis >= 7)",
            labels=labels)
        dead = GaugeMetricFamily(
            "portico_events_dead_letter_entries",
            "Entries in the consumer group's dead stream", labels=["group"])
        now = self.clock()
        for stream in self.streams:
            summary = self._pending_summary(stream)
            count = int(summary.get("pending") or 0)
            pending.add_metric([self.group, stream], count)
            first = summary.get("min")
            oldest.add_metric([self.group, stream],
                              max(0.0, now - entry_time(first)) if count and first else 0.0)
            lag = self._lag(stream)
            if lag is not None:
                undelivered.add_metric([self.group, stream], lag)
        dead.add_metric([self.group], self.redis.xlen(self.dead_stream))
        return [pending, oldest, undelivered, dead]

    def _pending_summary(self, stream: str) -> dict[str, Any]:
        try:
            return dict(self.redis.xpending(stream, self.group))
        except redis.ResponseError as exc:
            if "NOGROUP" in str(exc):  # not created yet (the consumer creates it on start)
                return {}
            raise

    def _lag(self, stream: str) -> int | None:
        try:
            groups = self.redis.xinfo_groups(stream)
        except redis.ResponseError:  # no such stream yet
            return None
        for found in groups:
            if as_text(found.get("name")) == self.group:
                lag = found.get("lag")
                return int(lag) if lag is not None else None
        return None
