"""A per-process cache of registered clients, validated against a Redis version key.

Every token, introspection and revocation request starts by loading its client; reading
the row from the database each time cost more than signing the token. Each process keeps
the clients it has loaded, tagged with the value of one Redis key (the *clients version*)
read *before* the row was loaded. ``clients.py`` sets that key to a fresh random value
around the commit of every client change (create, update, delete, secret rotation), so
the very next request on every replica sees a different version and reloads the row: a
deleted or rotated client stops working at once everywhere.

The version is read through :class:`services.common.watched.WatchedKeys` when the
provider has one: held in process and dropped the moment Redis pushes its change, so a
warm request makes no Redis round trip for it and still sees the very next change.

A random value rather than a counter: a Redis that lost its data (flush, failover) and is
bumped again cannot repeat a version some replica still holds (no ABA). When Redis cannot
answer, the cache is bypassed (the row comes from the database), never trusted blindly;
``MAX_AGE`` bounds what a bump lost between commit and Redis could leave stale.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

import redis

from services.common.streams import key
from services.common.watched import WatchedKeys

log = logging.getLogger("portico.identity.oidc")

MAX_AGE = 30.0  # seconds an entry may be trusted even when its version still matches
UNKNOWN_MAX_AGE = 5.0  # an unknown client_id is remembered briefly (garbage ids cost no query)
MAX_ENTRIES = 2048
UNREAD = object()  # "the caller has not read the clients version"


def version_key(namespace: str) -> str:
    return key(namespace, "oidc", "clients-version")


def bump_version(client: redis.Redis, namespace: str) -> None:
    """Make every process's cached clients stale (called around a client change's commit)."""
    client.set(version_key(namespace), uuid.uuid4().hex)


@dataclass(frozen=True)
class _Entry:
    version: bytes | None
    loaded_at: float
    value: object | None


class ClientCache:
    """``get(client_id)`` → what ``load(client_id)`` returned, reusing it while the Redis
    clients version is unchanged (and for at most ``MAX_AGE`` seconds)."""

    def __init__(self, redis_client: redis.Redis, namespace: str,
                 load: Callable[[str], object | None],
                 watched: WatchedKeys | None = None) -> None:
        self.redis = redis_client
        self.watched = watched  # where the version is read, if not by a plain GET
        self.key = version_key(namespace)
        self.load = load
        self._entries: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    def get(self, client_id: str, version: bytes | None | object = UNREAD):
        """The client, or None. ``version`` is the value of ``self.key`` if the caller has
        already read it (in one round trip with keys of its own); else it is read here."""
        if version is UNREAD:
            try:
                version = self.watched.mget([self.key])[0] if self.watched \
                    else self.redis.get(self.key)
            except redis.RedisError:
                log.warning("client cache bypassed: Redis unavailable")
                return self.load(client_id)
        now = time.monotonic()
        entry = self._entries.get(client_id)
        if entry is not None and entry.version == version:
            max_age = MAX_AGE if entry.value is not None else UNKNOWN_MAX_AGE
            if now - entry.loaded_at < max_age:
                return entry.value
        # The version was read before the row: a change committed meanwhile bumps it again,
        # so a row older than its tag is never kept past the next request.
        value = self.load(client_id)
        with self._lock:
            if len(self._entries) >= MAX_ENTRIES:
                self._entries.clear()
            self._entries[client_id] = _Entry(version, now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
