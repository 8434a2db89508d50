"""Brute-force protection for login and the token endpoint (flask-limiter on Redis).

Sized for offices where hundreds of people reach identity from one NAT address:

* login: per client address, *failed* sign-ins are limited (``LOGIN_RATE_LIMIT``) and
  successful ones only by a high ceiling (``LOGIN_SUCCESS_RATE_LIMIT``); the per-account
  lockout (lifecycle/lockout.py) is the brute-force defence of one account;
* ``/token``: every request counts per client address (``TOKEN_RATE_LIMIT_IP``), and per
  client (``TOKEN_RATE_LIMIT_CLIENT``) only once the client has authenticated: a stranger
  posting a client's id cannot spend that client's budget.

Storage errors are not swallowed: when Redis cannot answer, the request fails closed
with 503 (see app.py).

``/token`` is answered either by its fast route (``oidc/fast.py``) or by the view, and
a request the fast route declines reaches the view. Its limits are therefore not a
decorator on the view but :class:`TokenLimits`, applied once per request by whichever
path sees it first, through flask-limiter's own strategy and storage; the request's
WSGI environ carries each outcome to the view. ``/token`` answers carry no
``X-RateLimit-*`` headers (a refused one carries ``Retry-After``).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many
from limits.strategies import RateLimiter

# Set in a request's environ once a /token limit was applied: None (within limits) or
# the seconds after which to try again.
COUNTED_ADDRESS = "portico.token_limits.address"
COUNTED_CLIENT = "portico.token_limits.client"


def _retry_after(strategy: RateLimiter, item: RateLimitItem, *identifiers: str) -> int:
    reset = strategy.get_window_stats(item, *identifiers).reset_time
    return max(1, int(reset - time.time()) + 1)


class TokenLimits:
    """The ``/token`` limits: ``token_rate_limit_ip`` per address for every request and
    ``token_rate_limit_client`` per authenticated client, counted by the limiter's
    strategy, each once per request."""

    def __init__(self, limiter: Limiter, settings) -> None:
        self.limiter = limiter
        self.prefix = settings.redis_namespace
        self.per_address = parse_many(settings.token_rate_limit_ip)
        self.per_client = parse_many(settings.token_rate_limit_client)

    def _count(self, environ: dict[str, Any], counted: str, rules: list[RateLimitItem],
               identifier: str, scope: str) -> int | None:
        if counted in environ:
            return environ[counted]
        strategy = self.limiter.limiter
        retry_after = None
        for item in rules:
            if not strategy.hit(item, self.prefix, identifier, scope):
                retry_after = _retry_after(strategy, item, self.prefix, identifier, scope)
                break
        environ[counted] = retry_after
        return retry_after

    def apply(self, environ: dict[str, Any]) -> int | None:
        """Count this request per client address, before anything else (a second call
        reads the first's outcome): None within the limit, else the seconds to wait."""
        remote = environ.get("REMOTE_ADDR") or "127.0.0.1"  # as get_remote_address
        return self._count(environ, COUNTED_ADDRESS, self.per_address, remote, "token-ip")

    def apply_to_client(self, environ: dict[str, Any], client_id: str) -> int | None:
        """Count this request for ``client_id``, which has just authenticated (a second
        call reads the first's outcome): None within the limit, else the seconds to wait."""
        return self._count(environ, COUNTED_CLIENT, self.per_client,
                           "client:" + client_id[:64], "token-client")


class LoginLimits:
    """The login page's limits per client address: ``login_rate_limit`` on failed
    sign-ins, ``login_success_rate_limit`` on successful ones. A sign-in is refused
    (:meth:`refused`) while either is reached; only its outcome is counted."""

    def __init__(self, limiter: Limiter, settings) -> None:
        self.limiter = limiter
        self.prefix = settings.redis_namespace
        self.rules = {"login-failed": parse_many(settings.login_rate_limit),
                      "login-succeeded": parse_many(settings.login_success_rate_limit)}

    def refused(self, address: str) -> int | None:
        """None if a sign-in from ``address`` may be tried, else the seconds to wait."""
        strategy = self.limiter.limiter
        for scope, rules in self.rules.items():
            for item in rules:
                if not strategy.test(item, self.prefix, address, scope):
                    return _retry_after(strategy, item, self.prefix, address, scope)
        return None

    def note(self, address: str, succeeded: bool) -> None:
        """Count a sign-in's outcome (concurrent attempts may pass the limit by a few:
        the per-account lockout, counted in SQL, is what stops guessing)."""
        strategy = self.limiter.limiter
        scope = "login-succeeded" if succeeded else "login-failed"
        for item in self.rules[scope]:
            strategy.hit(item, self.prefix, address, scope)


def init_limits(app: Flask, settings) -> Limiter | None:
    if not settings.rate_limits_enabled:
        return None
    limiter = Limiter(
        key_func=get_remote_address, app=app, storage_uri=settings.redis_url,
        key_prefix=settings.redis_namespace, headers_enabled=True, swallow_errors=False,
        strategy="moving-window", default_limits=[],
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2},
    )
    app.extensions["identity.token_limits"] = TokenLimits(limiter, settings)
    app.extensions["identity.login_limits"] = LoginLimits(limiter, settings)
    return limiter


def token_limits(app: Flask) -> TokenLimits | None:
    """The ``/token`` limits, or None when rate limits are off."""
    return app.extensions.get("identity.token_limits")


def login_limits(app: Flask) -> LoginLimits | None:
    """The login page's limits, or None when rate limits are off."""
    return app.extensions.get("identity.login_limits")
