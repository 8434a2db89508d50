"""Rate limits of the unauthenticated enrollment endpoints, per client IP and per target.

Built on ``limits`` (the library under identity's flask-limiter) against the same Redis
and namespace, because the per-target keys (an email, an access code) come from the
parsed body, which a decorator cannot see. Redis errors propagate: identity answers 503
(fail closed), never unlimited attempts.
"""

from __future__ import annotations

import hashlib
import math
import time

from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from services.common.errors import Problem

from .codes import normalize_access_code


class TooManyRequests(Problem):
    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "too-many-requests", "Too many attempts. Try again later.",
                         headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"})
        self.retry_after = retry_after


def target_key(value: str) -> str:
    """Targets (emails, codes) are hashed before they become part of a Redis key."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


def code_target(typed: str | None) -> str | None:
    """The per-code limit's target: the code a person meant, however it was typed (so
    ``ABCD-EFGH-…`` and ``abcdefgh…`` share one budget); a malformed one as typed."""
    if typed is None:
        return None
    return normalize_access_code(typed) or typed


class RateGuard:
    def __init__(self, redis_url: str, namespace: str, enabled: bool = True) -> None:
        self.enabled = enabled
        self._limiter: MovingWindowRateLimiter | None = None
        self._url = redis_url
        self._prefix = f"{namespace}:limits:enrollment"

    def _strategy(self) -> MovingWindowRateLimiter:
        if self._limiter is None:
            storage = storage_from_string(self._url, key_prefix=self._prefix,
                                          socket_timeout=2, socket_connect_timeout=2)
            self._limiter = MovingWindowRateLimiter(storage)
        return self._limiter

    def hit(self, scope: str, rule: str, identifier: str) -> None:
        """Count one request of ``identifier`` in ``scope``; TooManyRequests past ``rule``."""
        if not self.enabled:
            return
        limiter = self._strategy()
        for item in parse_many(rule):
            if not limiter.hit(item, scope, identifier):
                stats = limiter.get_window_stats(item, scope, identifier)
                raise TooManyRequests(max(1, math.ceil(stats.reset_time - time.time())))
