"""Server-side state of the portal: sessions (with the user's tokens) and authlib's
authorization-request state (PKCE verifier, nonce).

The browser only ever holds a signed cookie with a random session id: Flask's cookie is
signed, not encrypted, so tokens never go into it. Redis when ``REDIS_URL`` is set (every
gunicorn worker sees the same sessions); else a dict in this process.
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections.abc import Iterator
from typing import Any

import redis


class MemoryStore:
    """Values with a time to live, in this process (one worker only)."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[float, str]] = {}
        self._lock = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}

    def get(self, key: str) -> str | None:
        with self._lock:
            found = self._items.get(key)
            if found is None or found[0] < time.monotonic():
                self._items.pop(key, None)
                return None
            return found[1]

    def set(self, key: str, value: str, expires_in: int) -> None:
        with self._lock:
            self._items[key] = (time.monotonic() + expires_in, value)

    def delete(self, key: str) -> None:
        with self._lock:
            self._items.pop(key, None)

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self._lock:
            named = self._locks.setdefault(key, threading.Lock())
        with named:
            yield


class RedisStore:
    """Values with a time to live in Redis, every key under ``prefix``."""

    def __init__(self, url: str, prefix: str) -> None:
        self.client = redis.Redis.from_url(url)
        self.prefix = prefix

    def _key(self, key: str) -> str:
        return f"{self.prefix}:{key}"

    def get(self, key: str) -> str | None:
        value = self.client.get(self._key(key))
        return None if value is None else value.decode()

    def set(self, key: str, value: str, expires_in: int) -> None:
        self.client.set(self._key(key), value, ex=max(int(expires_in), 1))

    def delete(self, key: str) -> None:
        self.client.delete(self._key(key))

    @contextlib.contextmanager
    def lock(self, key: str) -> Iterator[None]:
        with self.client.lock(self._key(f"lock:{key}"), timeout=15, blocking_timeout=10):
            yield


class SessionStore:
    """Portal sessions as JSON records under ``session:<id>``."""

    def __init__(self, backend: MemoryStore | RedisStore, ttl: int) -> None:
        self.backend = backend
        self.ttl = ttl

    def load(self, sid: str) -> dict[str, Any] | None:
        raw = self.backend.get(f"session:{sid}")
        return None if raw is None else json.loads(raw)

    def save(self, sid: str, record: dict[str, Any]) -> None:
        self.backend.set(f"session:{sid}", json.dumps(record), self.ttl)

    def delete(self, sid: str) -> None:
        self.backend.delete(f"session:{sid}")

    def lock(self, sid: str):
        """Held while a session's refresh token is used: refresh tokens rotate, and using
        one twice (two requests refreshing at once) would revoke the whole family."""
        return self.backend.lock(f"session:{sid}")


class CardStore:
    """The cards the portal has cancelled, by company (``cards:<company id>``): last five
    digits → who cancelled it and when. The sample portal's own record of the action."""

    def __init__(self, backend: MemoryStore | RedisStore, ttl: int = 90 * 24 * 3600) -> None:
        self.backend = backend
        self.ttl = ttl

    def cancelled(self, company_id: str) -> dict[str, dict[str, Any]]:
        raw = self.backend.get(f"cards:{company_id}")
        return {} if raw is None else json.loads(raw)

    def cancel(self, company_id: str, last5: str, by: str) -> bool:
        """Record the cancellation; False if the card was cancelled already (the first
        cancellation stands)."""
        with self.backend.lock(f"cards:{company_id}"):
            cards = self.cancelled(company_id)
            if last5 in cards:
                return False
            cards[last5] = {"by": by, "at": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}
            self.backend.set(f"cards:{company_id}", json.dumps(cards), self.ttl)
            return True


def make_backend(redis_url: str, prefix: str) -> MemoryStore | RedisStore:
    return RedisStore(redis_url, prefix) if redis_url else MemoryStore()
