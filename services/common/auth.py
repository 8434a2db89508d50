"""Bearer-token verification for every service (RFC 6750, RFC 9068 access tokens).

Tokens are JWTs signed by the identity service (RS256 or ES256). Their keys come
from its JWKS, cached and refreshed when a token names an unknown ``kid`` (key
rotation). ``iss``, ``aud``, ``exp`` and ``nbf`` are checked; a token whose ``jti``
is on the Redis deny-list (revoked by identity) is refused.

Views use :func:`require_auth`; a missing or bad token answers 401 with
``WWW-Authenticate: Bearer error="invalid_token"``, a token without the scope 403
``insufficient_scope``, both as problem+json.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, cast

import redis
import requests
from flask import Flask, current_app, g, request
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

from .errors import Problem
from .streams import key

log = logging.getLogger("portico.auth")

ALGORITHMS = ["RS256", "ES256"]
F = TypeVar("F", bound=Callable[..., Any])


class InvalidToken(Exception):
    """The token cannot be trusted. ``reason`` is safe to show; it never holds the token."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class JWKSCache:
    """The identity service's public keys, fetched with a timeout and kept for ``ttl`` seconds.

    An unknown ``kid`` forces a refresh, at most once per ``min_refresh_interval``
    so that a flood of forged kids cannot hammer the JWKS endpoint.
    """

    def __init__(self, url: str, *, ttl: float = 300, timeout: float = 3,
                 min_refresh_interval: float = 5, session: requests.Session | None = None) -> None:
        self.url = url
        self.ttl = ttl
        self.timeout = timeout
        self.min_refresh_interval = min_refresh_interval
        self._http = session or requests.Session()
        self._keys: KeySet | None = None
        self._kids: set[str] = set()
        self._fetched_at = 0.0
        self._lock = threading.Lock()

    def _fetch(self) -> None:
        try:
            response = self._http.get(self.url, timeout=self.timeout)
            response.raise_for_status()
            document = response.json()
            keys = KeySet.import_key_set(document)
        except (requests.RequestException, ValueError, JoseError) as exc:
            log.warning("jwks fetch failed", extra={"jwks_url": self.url, "error": type(exc).__name__})
            if self._keys is None:
                raise InvalidToken("signing keys are unavailable") from None
            return
        self._keys = keys
        self._kids = {k.get("kid") for k in document.get("keys", []) if k.get("kid")}
        self._fetched_at = time.monotonic()

    def keys_for(self, kid: str | None) -> KeySet:
        with self._lock:
            age = time.monotonic() - self._fetched_at
            stale = self._keys is None or age > self.ttl
            unknown = kid is not None and kid not in self._kids and age > self.min_refresh_interval
            if stale or unknown:
                self._fetch()
            assert self._keys is not None
            return self._keys


class TokenVerifier:
    """Verifies one service's incoming access tokens."""

    def __init__(self, jwks: JWKSCache, issuer: str, audience: str | Iterable[str], *,
                 leeway: int = 30, is_revoked: Callable[[str], bool] | None = None) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audiences = {audience} if isinstance(audience, str) else set(audience)
        self.leeway = leeway
        self.is_revoked = is_revoked

    def verify(self, token: str) -> dict[str, Any]:
        """The token's claims, or :class:`InvalidToken`."""
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, UnicodeError):
            raise InvalidToken("the token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("the token's algorithm is not accepted")
        kid = header.get("kid")
        try:
            decoded = jwt.decode(token, self.jwks.keys_for(kid), algorithms=ALGORITHMS)
        except JoseError:
            raise InvalidToken("the token's signature is not valid") from None
        claims = dict(decoded.claims)
        self._check_claims(claims)
        jti = claims.get("jti")
        if self.is_revoked is not None and jti and self.is_revoked(str(jti)):
            raise InvalidToken("the token has been revoked")
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        now = time.time()
        if claims.get("iss") != self.issuer:
            raise InvalidToken("the token was not issued by this issuer")
        aud = claims.get("aud")
        auds = {aud} if isinstance(aud, str) else set(aud or [])
        if not auds & self.audiences:
            raise InvalidToken("the token is not meant for this service")
        exp = claims.get("exp")
        if not isinstance(exp, int | float) or now > exp + self.leeway:
            raise InvalidToken("the token has expired")
        nbf = claims.get("nbf")
        if isinstance(nbf, int | float) and now + self.leeway < nbf:
            raise InvalidToken("the token is not valid yet")


def redis_deny_list(client: redis.Redis, namespace: str) -> Callable[[str], bool]:
    """``is_revoked(jti)`` backed by the keys identity writes on revocation.

    Fails closed: if Redis cannot answer, the token is treated as revoked.
    """

    def is_revoked(jti: str) -> bool:
        try:
            return bool(client.exists(key(namespace, "revoked-jti", jti)))
        except redis.RedisError:
            log.warning("deny-list unavailable; refusing token")
            return True

    return is_revoked


def revoke_jti(client: redis.Redis, namespace: str, jti: str, ttl_seconds: int) -> None:
    """Put ``jti`` on the deny-list until the token would have expired anyway."""
    client.set(key(namespace, "revoked-jti", jti), b"1", ex=max(int(ttl_seconds), 1))


def init_auth(app: Flask, audience: str | Iterable[str]) -> TokenVerifier:
    """Attach a :class:`TokenVerifier` for ``audience`` to ``app`` (from its settings)."""
    ctx = app.extensions["portico"]
    settings = ctx.settings
    verifier = TokenVerifier(
        JWKSCache(settings.jwks_url), settings.issuer, audience,
        is_revoked=redis_deny_list(ctx.redis, settings.redis_namespace),
    )
    app.extensions["portico.auth"] = verifier
    return verifier


def _bearer_token() -> str | None:
    header = request.headers.get("Authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _unauthorized(reason: str | None) -> Problem:
    challenge = 'Bearer realm="portico"'
    if reason:
        challenge += f', error="invalid_token", error_description="{reason}"'
    return Problem(401, "unauthorized", reason or "A bearer token is required.",
                   headers={"WWW-Authenticate": challenge})


def authenticate() -> dict[str, Any]:
    """Verify the request's bearer token and return its claims (cached on ``g``)."""
    if "token_claims" in g:
        return cast(dict[str, Any], g.token_claims)
    token = _bearer_token()
    if token is None:
        raise _unauthorized(None)
    verifier: TokenVerifier = current_app.extensions["portico.auth"]
    try:
        claims = verifier.verify(token)
    except InvalidToken as exc:
        raise _unauthorized(exc.reason) from None
    g.token_claims = claims
    return claims


def token_scopes(claims: dict[str, Any]) -> set[str]:
    scope = claims.get("scope") or ""
    return set(scope.split()) if isinstance(scope, str) else set(scope)


def require_auth(*scopes: str) -> Callable[[F], F]:
    """Decorator: the view needs a valid bearer token holding every one of ``scopes``."""

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            claims = authenticate()
            missing = set(scopes) - token_scopes(claims)
            if missing:
                raise Problem(
                    403, "insufficient-scope",
                    f"The token lacks the scope(s): {' '.join(sorted(missing))}.",
                    headers={"WWW-Authenticate":
                             f'Bearer realm="portico", error="insufficient_scope", '
                             f'scope="{" ".join(sorted(scopes))}"'},
                )
            return view(*args, **kwargs)

        return cast(F, wrapper)

    return decorate


def current_claims() -> dict[str, Any]:
    """The verified claims of the current request's token (after :func:`require_auth`)."""
    return authenticate()
