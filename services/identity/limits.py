"""Brute-force protection for login and the token endpoint (flask-limiter on Redis).

Limits are per client IP and, on ``/token``, per ``client_id``. Storage errors are not
swallowed: when Redis cannot answer, the request fails closed with 503 (see app.py).
"""

from __future__ import annotations

from authlib.oauth2.rfc6749.util import extract_basic_authorization
from flask import Flask, request
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address


def client_key() -> str:
    """The client_id a token request names (Basic auth, form, or assertion subject)."""
    client_id, _ = extract_basic_authorization(request.headers)
    client_id = client_id or request.form.get("client_id") or ""
    return "client:" + client_id[:64] if client_id else "client:-" + get_remote_address()


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
    token = views["oauth.token"]
    token = limiter.limit(settings.token_rate_limit_ip, scope="token-ip")(token)
    token = limiter.limit(settings.token_rate_limit_client, key_func=client_key,
                          scope="token-client")(token)
    views["oauth.token"] = token
    return limiter
