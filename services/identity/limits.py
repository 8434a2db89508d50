"""Brute-force protection for login and the token endpoint (flask-limiter on Redis).

Limits are per client IP and, on ``/token``, per ``client_id``. Storage errors are not
swallowed: when Redis cannot answer, the request fails closed with 503 (see app.py).

``/token`` is answered either by its fast route (``oidc/fast.py``) or by the view, and
a request the fast route declines reaches the view. Its two limits are therefore not a
decorator on the view but :class:`TokenLimits`, applied once per request by whichever
path sees it first, through flask-limiter's own strategy and storage; the request's
WSGI environ carries the outcome to the view. ``/token`` answers carry no
``X-RateLimit-*`` headers (a refused one carries ``Retry-After``).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits import RateLimitItem, parse_many

# Set in a request's environ once its /token limits were applied: None (within limits)
# or the seconds after which to try again.
COUNTED = "portico.token_limits"


def client_key(headers: Mapping[str, str], form: Mapping[str, str], remote_addr: str) -> str:
    """The client_id a token request names (Basic auth or form), else its address."""
    client_id, _ = extract_basic_authorization(headers)
    client_id = client_id or form.get("client_id") or ""
    return "client:" + client_id[:64] if client_id else "client:-" + remote_addr


class TokenLimits:
    """The ``/token`` limits: ``token_rate_limit_ip`` per address and
    ``token_rate_limit_client`` per named client, counted by the limiter's strategy."""

    def __init__(self, limiter: Limiter, settings) -> None:
        self.limiter = limiter
        self.prefix = settings.redis_namespace
        self.rules: list[tuple[RateLimitItem, str, bool]] = [
            *((item, "token-ip", False) for item in parse_many(settings.token_rate_limit_ip)),
            *((item, "token-client", True)
              for item in parse_many(settings.token_rate_limit_client))]

    def apply(self, environ: dict[str, Any], headers: Mapping[str, str],
              form: Mapping[str, str]) -> int | None:
        """Count this request once (a second call reads the first's outcome): None if it
        is within every limit, else the seconds after which to try again."""
        if COUNTED in environ:
            return environ[COUNTED]
        remote = environ.get("REMOTE_ADDR") or "127.0.0.1"  # as get_remote_address
        client = client_key(headers, form, remote)
        strategy = self.limiter.limiter
        retry_after = None
        for item, scope, per_client in self.rules:
            identifiers = (self.prefix, client if per_client else remote, scope)
            if not strategy.hit(item, *identifiers):
                reset = strategy.get_window_stats(item, *identifiers).reset_time
                retry_after = max(1, int(reset - time.time()) + 1)
                break
        environ[COUNTED] = retry_after
        return retry_after


def init_limits(app: Flask, settings) -> Limiter | None:
    if not settings.rate_limits_enabled:
        return None
    limiter = Limiter(
        key_func=get_remote_address, app=app, storage_uri=settings.redis_url,
        key_prefix=settings.redis_namespace, headers_enabled=True, swallow_errors=False,
        strategy="moving-window", default_limits=[],
        storage_options={"socket_connect_timeout": 2, "socket_timeout": 2},
    )
    views = app.view_functions
    views["login.login"] = limiter.limit(settings.login_rate_limit, methods=["POST"],
                                         scope="login-ip")(views["login.login"])
    app.extensions["identity.token_limits"] = TokenLimits(limiter, settings)
    return limiter


def token_limits(app: Flask) -> TokenLimits | None:
    """The ``/token`` limits, or None when rate limits are off."""
    return app.extensions.get("identity.token_limits")
