"""Redis keys held in process until Redis says they changed.

A hot read that must see every change at once (a revoked entitlement denied on the very
next check, from every replica) used to pay a Redis round trip per request (two socket
calls and the thread switches around them). :class:`WatchedKeys` answers such reads from
memory instead, and learns of changes from Redis's server-assisted client-side caching
(https://redis.io/docs/latest/develop/reference/client-side-caching/): one connection
per process, in RESP3, asks Redis to push an invalidation for every change to any key
under the watched prefixes (``CLIENT TRACKING ON BCAST PREFIX ...``).

The contract, which :meth:`WatchedKeys.mget` keeps:

* **Every read first takes in what Redis has pushed** (a non-blocking read of the watch
  connection). Redis queues a broadcast invalidation in the same event-loop turn as the
  write that caused it, before it writes that command's reply (``beforeSleep``: the
  broadcast, then the pending replies, the most recently queued client first). So once a
  writer has heard its ``INCR`` or ``SET`` answered, the invalidation is already in every
  watcher's socket on the same host, and on its way to the others ahead of anything the
  writer does next.
* **A value read while it changed is not kept.** A key being read is marked first; an
  invalidation removes the mark, and the value is kept only if its mark survived.
* **Nothing is answered from memory without proof the watch is complete.** The watch
  is pinged every ``heartbeat`` seconds; Redis answers a ping after every push it had
  queued for the watch, so its pong proves the watch complete up to when the ping was
  *sent*. Held values are used only while that moment is within ``2 × heartbeat``. A
  watch that closes, errors or leaves a ping unanswered for ``heartbeat`` is dropped
  with everything it vouched for, and reads go to Redis until a new one is up. The
  weakest case is a network that silently stops delivering to one replica: it answers
  from memory for at most ``2 × heartbeat`` (1 s by default) after the last ping Redis
  answered was sent.
* Where the watch cannot be set up (a Redis that refuses ``CLIENT TRACKING``), every
  read is a plain ``MGET``, as before; Redis errors are raised as ``MGET`` raises them.

Why not redis-py's own client-side cache (``cache_config``): it needs Redis >= 7.4
(``make run``'s embedded server is 6.2), tracks keys per pooled connection and takes in
only the invalidations of the connection in hand, so a key read on one connection and
changed later could be served stale through another.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import redis

log = logging.getLogger("portico.redis.watched")

_MISSING = object()
RETRY_FAILED_WATCH_S = 5.0  # after a watch could not be started, the next attempt
Value = bytes | str | None  # str from a client with decode_responses


class WatchedKeys:
    """``MGET`` of keys under ``prefixes`` through ``client``, answered from memory
    whenever the watch vouches for what is held (see the module's docstring)."""

    def __init__(self, client: redis.Redis, prefixes: Sequence[str], *,
                 max_entries: int = 100_000, heartbeat: float = 0.5,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.redis = client
        self.prefixes = tuple(prefixes)
        self.max_entries = max_entries
        self.heartbeat = heartbeat
        self.clock = clock
        self._lock = threading.Lock()
        self._values: dict[str, Any] = {}
        self._reading: dict[str, object] = {}  # key -> the mark of the read in flight
        self._watch: redis.connection.AbstractConnection | None = None
        self._pid = os.getpid()
        self._heard = 0.0
        self._ping_sent: float | None = None
        self._next_attempt = 0.0
        self._unavailable_logged = False

    def mget(self, keys: Sequence[str]) -> list[Value]:
        """The values of ``keys`` as ``MGET`` would answer them now."""
        with self._lock:
            if not (self._take_in_pushes() and self._vouched()):
                missing = None
            else:
                held = [self._values.get(k, _MISSING) for k in keys]
                missing = list(dict.fromkeys(k for k, v in zip(keys, held, strict=True)
                                             if v is _MISSING))
                if not missing:
                    return held
                mark = object()
                for k in missing:
                    if k.startswith(self.prefixes):  # no invalidation would come for others
                        self._reading[k] = mark
        if missing is None:
            return list(self.redis.mget(list(keys)))
        try:
            fetched = self.redis.mget(missing)
        except redis.RedisError:
            with self._lock:
                self._unmark(missing, mark)
            raise
        with self._lock:
            # Pushes that came in during the read remove marks: keep what is still marked.
            # (A watch lost meanwhile took every mark with it.)
            if self._take_in_pushes():
                for k, value in zip(missing, fetched, strict=True):
                    if self._reading.get(k) is mark:
                        self._hold(k, value)
                self._unmark(missing, mark)
        found: dict[str, Any] = dict(zip(missing, fetched, strict=True))
        return [found[k] if v is _MISSING else v for k, v in zip(keys, held, strict=True)]

    def watch(self, prefix: str) -> None:
        """Hold keys under ``prefix`` too (a component adds the keys it reads on every
        request). A watch already up is dropped, to be started again with every prefix."""
        with self._lock:
            if prefix not in self.prefixes:
                self.prefixes += (prefix,)
                self._drop_watch()
                self._next_attempt = 0.0  # not a failure: start again on the next read

    # -- under self._lock ----------------------------------------------------------

    def _unmark(self, keys: list[str], mark: object) -> None:
        for k in keys:
            if self._reading.get(k) is mark:
                del self._reading[k]

    def _vouched(self) -> bool:
        return self.clock() - self._heard <= 2 * self.heartbeat

    def _hold(self, k: str, value: Value) -> None:
        values = self._values
        if k not in values and len(values) >= self.max_entries:
            del values[next(iter(values))]  # the oldest held
        values[k] = value

    def _take_in_pushes(self) -> bool:
        """Apply what the watch has pushed (starting one if there is none); False if there
        is no watch. Pings it once the last answered ping is ``heartbeat`` old."""
        if self._pid != os.getpid():  # a forked child: the parent's socket is not ours
            self._watch, self._pid = None, os.getpid()
            self._values.clear()
            self._reading.clear()
        now = self.clock()
        if not self.prefixes:  # nothing to watch: a watch of no prefix would be every key
            return False
        if self._watch is None and not self._start_watch(now):
            return False
        watch = self._watch
        assert watch is not None
        try:
            # One poll(2) when nothing came, nearly always. Every read of the watch is
            # here and empties redis-py's buffer as well as the socket (can_read sees
            # both), so nothing waits in that buffer unseen by the next poll.
            if readable(watch):
                while True:
                    reply = watch.read_response(push_request=True)
                    if reply == b"PONG" and self._ping_sent is not None:
                        # Redis answered a ping sent then, after every push it had
                        # queued for us: the watch is known complete up to that moment.
                        self._heard, self._ping_sent = self._ping_sent, None
                    if not watch.can_read(timeout=0):
                        break
            if self._ping_sent is None and now - self._heard >= self.heartbeat:
                watch.send_command("PING")
                self._ping_sent = now
        except (redis.RedisError, OSError) as exc:
            self._lose_watch("failed", exc)
            return False
        if self._ping_sent is not None and now - self._ping_sent > self.heartbeat:
            self._lose_watch("stopped answering", None)
            return False
        return True

    def _on_invalidate(self, push: list) -> None:
        """Redis's ``["invalidate", [key, ...]]``; a null list means every key (FLUSHALL)."""
        changed = push[1] if len(push) > 1 else None
        if changed is None:
            self._values.clear()
            self._reading.clear()
            return
        for raw in changed:
            k = raw.decode() if isinstance(raw, bytes) else str(raw)
            self._values.pop(k, None)
            self._reading.pop(k, None)

    def _start_watch(self, now: float) -> bool:
        if now < self._next_attempt:
            return False
        self._next_attempt = now + self.heartbeat
        pool = self.redis.connection_pool
        # RESP3: the invalidations come on this connection. No health checks: a PING of
        # redis-py's own would read replies meant for this class.
        watch = pool.connection_class(**{**pool.connection_kwargs, "protocol": 3,
                                         "health_check_interval": 0})
        try:
            watch.connect()
            # The private hook is how redis-py itself receives invalidations (its
            # CacheProxyConnection); without it read_response drops them.
            watch._parser.set_invalidation_push_handler(self._on_invalidate)
            args: list[str] = ["CLIENT", "TRACKING", "ON", "BCAST"]
            for prefix in self.prefixes:
                args += ["PREFIX", prefix]
            watch.send_command(*args)
            reply = watch.read_response()
            if isinstance(reply, Exception):
                raise reply
        except (redis.RedisError, OSError) as exc:
            watch.disconnect()
            # Attempts hold the lock every reader waits on (a blackholed Redis keeps one
            # for the connect timeout): after a failure, reads go straight to Redis for a
            # while before the next.
            self._next_attempt = now + RETRY_FAILED_WATCH_S
            if not self._unavailable_logged:
                log.warning("cannot watch redis keys; every read goes to redis",
                            extra={"error_type": type(exc).__name__})
                self._unavailable_logged = True
            return False
        # Nothing is held: a watch is only started when there is none, and losing one
        # dropped what it had vouched for.
        self._watch, self._heard, self._ping_sent = watch, now, None
        self._unavailable_logged = False
        return True

    def _lose_watch(self, why: str, exc: Exception | None) -> None:
        log.warning("redis key watch %s; every read goes to redis until it is back", why,
                    extra={"error_type": type(exc).__name__ if exc else None})
        self._drop_watch()

    def _drop_watch(self) -> None:
        if self._watch is not None:
            # Already broken, perhaps: there is nothing to close cleanly then.
            with contextlib.suppress(redis.RedisError, OSError):
                self._watch.disconnect()
        self._watch = None
        self._values.clear()
        self._reading.clear()


def readable(conn: redis.connection.AbstractConnection) -> bool:
    """Whether ``conn``'s socket has data or an end of file waiting (or is unusable).

    One poll(2): redis-py's ``can_read()`` costs three system calls and an exception.
    Bytes redis-py has already read into its own buffer are not seen."""
    sock = getattr(conn, "_sock", None)
    if sock is None:
        return False
    try:
        poller = select.poll()
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
