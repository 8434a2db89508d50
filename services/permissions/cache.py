"""The check cache: a per-user snapshot, kept in process and in Redis, behind a
per-user version key.

Every change to a user's grants or status bumps ``<ns>:perm-version:<user>`` in
Redis *after* its transaction commits. A check reads that key and uses the in-process
snapshot only if it was built for the same version, so the very next check on any
replica sees a revocation. A reader that raced the commit can only have stored its
snapshot under the old version, which nobody asks for any more. The version keys are
read through the app's :class:`services.common.watched.WatchedKeys`: held in process
and dropped the moment Redis pushes their change, so a warm check makes no Redis round
trip at all.

If Redis cannot answer, checks are decided from the database directly (slower,
never stale) and nothing is cached.

A lost bump (Redis unreachable right after a commit) is bounded by ``max_age``: a
snapshot is trusted for ``max_age`` seconds from when it was *built*, wherever it is
read from. The Redis copy carries its build time and expires after ``max_age`` too,
so a replica picking it up late only gets what is left of that age.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

import redis
from sqlalchemy import event
from sqlalchemy.orm import Session

from services.common.streams import key
from services.common.watched import WatchedKeys

log = logging.getLogger("portico.permissions.cache")

Snapshot = dict[str, Any]
CHANGED = "permissions.changed_users"
# Where the app keeps its Invalidator and SnapshotCache (``app.extensions``); a session
# that changes grants carries the invalidator under INVALIDATOR (``session.info``).
INVALIDATOR = "permissions.invalidator"
SNAPSHOTS = "permissions.snapshots"


class Invalidator:
    """Bumps users' version keys."""

    def __init__(self, client: redis.Redis, namespace: str) -> None:
        self.redis = client
        self.namespace = namespace

    def version_key(self, user_id: str) -> str:
        return key(self.namespace, "perm-version", user_id)

    def bump(self, user_ids: Iterable[str]) -> None:
        ids = sorted(set(user_ids))
        if not ids:
            return
        try:
            pipe = self.redis.pipeline(transaction=False)
            for user_id in ids:
                pipe.incr(self.version_key(user_id))
            pipe.execute()
        except redis.RedisError as exc:
            # Every copy of the snapshots, in process or in Redis, ages out after max_age.
            log.warning("permission cache invalidation failed",
                        extra={"users": len(ids), "error_type": type(exc).__name__})


def note_changed(session: Session, *user_ids: str) -> None:
    """Mark users whose permissions changed; their versions are bumped once ``session``
    commits, by the invalidator it carries (``session.info[INVALIDATOR]``)."""
    changed: set[str] | None = session.info.get(CHANGED)
    if changed is None:
        invalidator: Invalidator = session.info[INVALIDATOR]
        changed = session.info[CHANGED] = set()

        def after_commit(committed: Session) -> None:
            invalidator.bump(committed.info.pop(CHANGED, set()))

        event.listen(session, "after_commit", after_commit, once=True)
    changed.update(u for u in user_ids if u)


class SnapshotCache:
    """Snapshots by user: in process (LRU, keyed by version) and in Redis (by version)."""

    def __init__(self, client: redis.Redis, namespace: str,
                 loader: Callable[[list[str]], dict[str, Snapshot]], *,
                 watched: WatchedKeys, max_entries: int, max_age: float) -> None:
        self.redis = client
        self.watched = watched  # where the version keys are read
        self.namespace = namespace
        self.loader = loader
        self.max_entries = max_entries
        self.max_age = max_age
        self.redis_ttl = max(1, math.ceil(max_age))
        self._local: OrderedDict[str, tuple[bytes, float, Snapshot]] = OrderedDict()
        self._lock = threading.Lock()
        self._redis_down = False

    def _snapshot_key(self, user_id: str, version: bytes) -> str:
        return key(self.namespace, "perm-snapshot", user_id, version.decode())

    def get_many(self, user_ids: list[str]) -> dict[str, Snapshot]:
        """Snapshots of ``user_ids``; no Redis round trip when all are warm."""
        ids = list(dict.fromkeys(user_ids))
        versions, _ = self.versions(ids)
        return self.snapshots(ids, versions)

    def versions(self, user_ids: list[str], extra_keys: list[str] | tuple[str, ...] = ()
                 ) -> tuple[list[bytes | None] | None, list[bytes | None] | None]:
        """The version of each of ``user_ids`` (distinct) and the values of ``extra_keys``
        (say, the caller's deny-list entry), in one MGET (none when the watched keys hold
        them all); ``(None, None)`` if Redis cannot answer."""
        names = [key(self.namespace, "perm-version", u) for u in user_ids]
        try:
            values = self.watched.mget(names + list(extra_keys)) if names or extra_keys else []
        except redis.RedisError as exc:
            self._report_down(exc)
            return None, None
        self._redis_down = False
        return values[:len(names)], values[len(names):]

    def snapshots(self, user_ids: list[str], versions: list[bytes | None] | None
                  ) -> dict[str, Snapshot]:
        """Snapshots of ``user_ids`` (distinct) at ``versions`` (from :meth:`versions`;
        None: Redis is down, read the database)."""
        if versions is None:
            return self.loader(user_ids)
        found: dict[str, Snapshot] = {}
        misses: list[tuple[str, bytes]] = []
        now = time.monotonic()
        local = self._local
        with self._lock:
            for user_id, raw in zip(user_ids, versions, strict=True):
                version = raw or b"0"
                entry = local.get(user_id)
                if entry is not None and entry[0] == version and now - entry[1] < self.max_age:
                    local.move_to_end(user_id)
                    found[user_id] = entry[2]
                else:
                    misses.append((user_id, version))
        if misses:
            found.update(self._fill(misses, now))
        return found

    def get(self, user_id: str) -> Snapshot:
        return self.get_many([user_id])[user_id]

    def _fill(self, misses: list[tuple[str, bytes]], now: float) -> dict[str, Snapshot]:
        filled: dict[str, Snapshot] = {}
        try:
            stored = self.redis.mget([self._snapshot_key(u, v) for u, v in misses])
        except redis.RedisError as exc:
            self._report_down(exc)
            return self.loader([u for u, _ in misses])
        to_load = []
        # When each snapshot was built, on this process's monotonic clock.
        built: dict[str, float] = {}
        wall = time.time()
        for (user_id, version), raw in zip(misses, stored, strict=True):
            entry = _stored_entry(raw)
            if entry is None or not 0 <= wall - entry[0] < self.max_age:
                to_load.append((user_id, version))
            else:
                filled[user_id] = untracked(entry[1])
                built[user_id] = now - (wall - entry[0])
        if to_load:
            built_at = time.time()  # before the read: the snapshot is at least this fresh
            loaded = self.loader([u for u, _ in to_load])
            try:
                pipe = self.redis.pipeline(transaction=False)
                for user_id, version in to_load:
                    pipe.set(self._snapshot_key(user_id, version),
                             json.dumps({"b": built_at, "s": loaded[user_id]},
                                        separators=(",", ":")),
                             ex=self.redis_ttl)
                pipe.execute()
            except redis.RedisError as exc:
                self._report_down(exc)
            filled.update((user_id, untracked(loaded[user_id])) for user_id, _ in to_load)
            built.update((user_id, now) for user_id, _ in to_load)
        versions = dict(misses)
        with self._lock:
            for user_id, snapshot in filled.items():
                self._local[user_id] = (versions[user_id], built[user_id], snapshot)
                self._local.move_to_end(user_id)
            while len(self._local) > self.max_entries:
                self._local.popitem(last=False)
        return filled

    def _report_down(self, exc: Exception) -> None:
        if not self._redis_down:
            log.warning("permission cache cannot reach redis; deciding from the database",
                        extra={"error_type": type(exc).__name__})
        self._redis_down = True


def untracked(value: Any) -> Any:
    """``value`` with its lists as tuples: CPython stops tracking (for its cycle collector)
    a tuple or dict that holds only strings, numbers, None and untracked containers, so
    full collections, which stop every thread of the worker, do not walk a warm cache.
    Snapshots are never modified once cached, so tuples lose nothing."""
    if isinstance(value, list | tuple):
        return tuple(untracked(item) for item in value)
    if isinstance(value, dict):
        return {k: untracked(item) for k, item in value.items()}
    return value


def _stored_entry(raw: bytes | None) -> tuple[float, Snapshot] | None:
    """``(built at, snapshot)`` from a Redis value, or None (absent or not this format)."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
        return float(value["b"]), value["s"]
    except (ValueError, TypeError, KeyError):
        return None
