"""Identity's rate limits: one limiter on ``limits``, one Redis storage, one 429.

Every limit is a rule from the settings in ``limits`` syntax (``"10 per minute;100 per
hour"``), counted with the moving-window strategy in identity's Redis under
``<REDIS_NAMESPACE>:limits:``, per scope (``login-failed``, ``token-ip``, ``enroll-target``…)
and identifier (a client address, a client id, a hashed target). A refusal is
:class:`TooManyRequests`, a 429 problem with ``Retry-After``; ``/token`` answers its own in
RFC 6749's shape. Redis errors are not swallowed: identity answers 503 (fail closed, see
app.py), never unlimited attempts. ``RATE_LIMITS_ENABLED=false`` turns every limit off.

Sized for offices where hundreds of people reach identity from one NAT address:

* login: per client address, *failed* sign-ins are limited (``LOGIN_RATE_LIMIT``) and
  successful ones only by a high ceiling (``LOGIN_SUCCESS_RATE_LIMIT``); the per-account
  lockout (lifecycle/lockout.py) is the brute-force defence of one account;
* ``/token``: every request counts per client address (``TOKEN_RATE_LIMIT_IP``), and per
  client (``TOKEN_RATE_LIMIT_CLIENT``) only once the client has authenticated: a stranger
  posting a client's id cannot spend that client's budget;
* the unauthenticated enrollment, activation and recovery endpoints: per client address
  and, where the body names one, per target (an email, a code, a token), hashed before it
  becomes part of a key.

``/token`` is answered either by its fast route (``oidc/fast.py``) or by the view, and
a request the fast route declines reaches the view. Its limits are therefore not a decorator
on the view but :class:`TokenLimits`, applied once per request by whichever path sees it
first; the request's WSGI environ carries each outcome to the view.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections.abc import Callable
from functools import cache
from typing import Any

from flask import Flask, current_app, request
from limits import parse_many
from limits.storage import storage_from_string
from limits.strategies import MovingWindowRateLimiter

from services.common.errors import Problem
from services.common.streams import key

# Set in a request's environ once a /token limit was applied: None (within limits) or
# the seconds after which to try again.
COUNTED_ADDRESS = "portico.token_limits.address"
COUNTED_CLIENT = "portico.token_limits.client"

_rules = cache(parse_many)  # rules come from the settings: a handful of strings


class TooManyRequests(Problem):
    """Past a rate limit: 429, ``Retry-After`` the seconds until the window frees a hit."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(429, "too-many-requests", "Too many attempts. Try again later.",
                         headers={"Retry-After": str(retry_after), "Cache-Control": "no-store"})
        self.retry_after = retry_after


def target_key(value: str) -> str:
    """Targets (emails, codes, tokens) are hashed before they become part of a Redis key."""
    return hashlib.sha256(value.strip().lower().encode()).hexdigest()[:32]


class RateLimiter:
    """Identity's one limiter. Each method takes a ``scope``, a ``rule`` (the setting's
    value) and an ``identifier``; when limits are off, every request is within them."""

    def __init__(self, redis_url: str, namespace: str, enabled: bool = True) -> None:
        self.enabled = enabled
        storage = storage_from_string(redis_url, key_prefix=key(namespace, "limits"),
                                      socket_timeout=2, socket_connect_timeout=2)
        self.strategy = MovingWindowRateLimiter(storage)

    def _first_refusal(self, allows: Callable[..., bool], scope: str, rule: str,
                       identifier: str) -> int | None:
        if not self.enabled:
            return None
        for item in _rules(rule):
            if not allows(item, scope, identifier):
                reset = self.strategy.get_window_stats(item, scope, identifier).reset_time
                return max(1, math.ceil(reset - time.time()))
        return None

    def hit(self, scope: str, rule: str, identifier: str) -> int | None:
        """Count one request of ``identifier`` in ``scope``: None within ``rule``, else
        the seconds to wait (the rule's later windows are then not counted)."""
        return self._first_refusal(self.strategy.hit, scope, rule, identifier)

    def test(self, scope: str, rule: str, identifier: str) -> int | None:
        """As :meth:`hit`, counting nothing."""
        return self._first_refusal(self.strategy.test, scope, rule, identifier)

    def enforce(self, scope: str, rule: str, identifier: str) -> None:
        """Count one request of ``identifier`` in ``scope``; TooManyRequests past ``rule``."""
        retry_after = self.hit(scope, rule, identifier)
        if retry_after is not None:
            raise TooManyRequests(retry_after)


def limit_request(scope: str, address_rule: str, target_rule: str | None = None,
                  target: str | None = None) -> None:
    """Count this request per client address (``<scope>-ip``) and, when a target is given,
    per hashed target (``<scope>-target``); TooManyRequests past either rule."""
    limiter = rate_limiter()
    limiter.enforce(f"{scope}-ip", address_rule, request.remote_addr or "-")
    if target_rule and target:
        limiter.enforce(f"{scope}-target", target_rule, target_key(target))


class TokenLimits:
    """The ``/token`` limits: ``token_rate_limit_ip`` per address for every request and
    ``token_rate_limit_client`` per authenticated client, each counted once per request."""

    def __init__(self, limiter: RateLimiter, settings) -> None:
        self.limiter = limiter
        self.per_address = settings.token_rate_limit_ip
        self.per_client = settings.token_rate_limit_client

    def _once(self, environ: dict[str, Any], counted: str, scope: str, rule: str,
              identifier: str) -> int | None:
        if counted not in environ:
            environ[counted] = self.limiter.hit(scope, rule, identifier)
        return environ[counted]

    def apply(self, environ: dict[str, Any]) -> int | None:
        """Count this request per client address, before anything else (a second call
        reads the first's outcome): None within the limit, else the seconds to wait."""
        remote = environ.get("REMOTE_ADDR") or "127.0.0.1"
        return self._once(environ, COUNTED_ADDRESS, "token-ip", self.per_address, remote)

    def apply_to_client(self, environ: dict[str, Any], client_id: str) -> int | None:
        """Count this request for ``client_id``, which has just authenticated (a second
        call reads the first's outcome): None within the limit, else the seconds to wait."""
        return self._once(environ, COUNTED_CLIENT, "token-client", self.per_client,
                          "client:" + client_id[:64])


class LoginLimits:
    """The login page's limits per client address: ``login_rate_limit`` on failed
    sign-ins, ``login_success_rate_limit`` on successful ones. A sign-in is refused
    (:meth:`check`) while either is reached; only its outcome is counted (:meth:`note`)."""

    def __init__(self, limiter: RateLimiter, settings) -> None:
        self.limiter = limiter
        self.rules = {False: ("login-failed", settings.login_rate_limit),
                      True: ("login-succeeded", settings.login_success_rate_limit)}

    def check(self, address: str) -> None:
        """TooManyRequests while a sign-in from ``address`` may not be tried."""
        for scope, rule in self.rules.values():
            retry_after = self.limiter.test(scope, rule, address)
            if retry_after is not None:
                raise TooManyRequests(retry_after)

    def note(self, address: str, succeeded: bool) -> None:
        """Count a sign-in's outcome (concurrent attempts may pass the limit by a few:
        the per-account lockout, counted in SQL, is what stops guessing)."""
        self.limiter.hit(*self.rules[succeeded], address)


def init_rate_limits(app: Flask, settings) -> None:
    limiter = RateLimiter(settings.redis_url, settings.redis_namespace,
                          enabled=settings.rate_limits_enabled)
    app.extensions["identity.rate_limiter"] = limiter
    app.extensions["identity.token_limits"] = TokenLimits(limiter, settings)
    app.extensions["identity.login_limits"] = LoginLimits(limiter, settings)


def rate_limiter(app: Flask | None = None) -> RateLimiter:
    return (app or current_app).extensions["identity.rate_limiter"]


def token_limits(app: Flask | None = None) -> TokenLimits:
    return (app or current_app).extensions["identity.token_limits"]


def login_limits(app: Flask | None = None) -> LoginLimits:
    return (app or current_app).extensions["identity.login_limits"]
