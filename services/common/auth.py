"""Bearer-token verification for every service (RFC 6750, RFC 9068 access tokens).

Tokens are JWTs signed by the identity service (RS256 or ES256). Their keys come
from its JWKS, cached and refreshed when a token names an unknown ``kid`` (key
rotation). ``typ`` (``at+jwt``), ``iss``, ``aud``, ``exp`` and ``nbf`` are checked; a
token whose ``jti`` is on the Redis deny-list (revoked by identity) is refused.

Verified claims are kept per process, keyed by the token's SHA-256, until the token
expires or ``claims_ttl`` (30 s) passes, whichever is first: a repeated token skips
the signature check. The deny-list is still consulted on *every* request, so a
revocation takes effect on the very next request everywhere: its keys are the app's
watched keys (:class:`services.common.watched.WatchedKeys`), held in process and dropped
the moment Redis pushes their change. (A key withdrawn from the JWKS
stops a token already seen by a process within ``claims_ttl``.)

A client that identity deletes has all its tokens revoked at once: identity writes
:func:`client_revocation_key` (the time of the deletion, see :func:`revoke_client`), and
a token of that client issued up to then is refused as a revoked ``jti`` is. That key is
read together with the ``jti``'s (one ``MGET``, :meth:`DenyList.revoked`), or, where a
caller reads only the ``jti``'s key itself (:func:`fast_route_claims`,
:func:`settle_revocation`), through the watched keys (held in process).

A hot view may fold that deny-list read into its own Redis round trip:
``require_auth(defer_revocation=True)`` postpones it, the view fetches
:func:`revocation_key` together with its own keys and hands the value to
:func:`settle_revocation` before it uses any data. If the view never settles (or
fails), the decorator reads the deny-list itself before answering, so no path
serves a revoked token.

Views use :func:`require_auth`; a missing or bad token answers 401 with
``WWW-Authenticate: Bearer error="invalid_token"``, a token without the scope 403
``insufficient_scope``, both as problem+json.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import threading
import time
from collections import OrderedDict
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
from .watched import WatchedKeys

log = logging.getLogger("portico.auth")

ALGORITHMS = ["RS256", "ES256"]
# RFC 9068 §4: the ``typ`` of an access token; any other JWT the issuer signs with the
# same keys (an ID token, a logout token) must be refused where an access token is due.
ACCESS_TOKEN_TYPES = frozenset({"at+jwt", "application/at+jwt"})


def is_access_token_header(header: dict[str, Any]) -> bool:
    """Whether a JWT's protected header says it is an access token (RFC 9068 §2.1)."""
    typ = header.get("typ")
    return isinstance(typ, str) and typ.lower() in ACCESS_TOKEN_TYPES


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


class ClaimsCache:
    """Verified claims by token digest: a bounded LRU whose entries have a deadline."""

    def __init__(self, *, max_entries: int = 10_000, ttl: float = 30.0) -> None:
        self.max_entries = max_entries
        self.ttl = ttl
        self._entries: OrderedDict[bytes, tuple[float, dict[str, Any]]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, digest: bytes, now: float) -> dict[str, Any] | None:
        with self._lock:
            entry = self._entries.get(digest)
            if entry is None:
                return None
            if now >= entry[0]:
                del self._entries[digest]
                return None
            self._entries.move_to_end(digest)
            return entry[1]

    def put(self, digest: bytes, claims: dict[str, Any], deadline: float) -> None:
        with self._lock:
            self._entries[digest] = (deadline, claims)
            self._entries.move_to_end(digest)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)


def deny_key(namespace: str, jti: str) -> str:
    """The Redis key that marks ``jti`` revoked (``jti=""``: the deny-list's prefix)."""
    return key(namespace, "revoked-jti", jti)


def client_revocation_key(namespace: str, client_id: str) -> str:
    """The Redis key that revokes every token issued to ``client_id`` up to the time it
    holds (``client_id=""``: the prefix of such keys)."""
    return key(namespace, "revoked-client", client_id)


def revocation_keys(namespace: str, claims: dict[str, Any]) -> list[str]:
    """The keys that say whether the token of ``claims`` is revoked: its ``jti``'s, then
    its client's (either missing when the token has no such claim)."""
    keys = []
    if claims.get("jti"):
        keys.append(deny_key(namespace, str(claims["jti"])))
    if claims.get("client_id"):
        keys.append(client_revocation_key(namespace, str(claims["client_id"])))
    return keys


def revoked_by(claims: dict[str, Any], values: list[bytes | str | None]) -> bool:
    """Whether the values read at :func:`revocation_keys` (in that order) revoke the
    token of ``claims``: its ``jti`` is on the deny-list, or its client was deleted at or
    after the token was issued."""
    found = list(values)
    if claims.get("jti") and found.pop(0) is not None:
        return True
    if claims.get("client_id"):
        return client_revoked(claims, found.pop(0))
    return False


def client_revoked(claims: dict[str, Any], value: bytes | str | None) -> bool:
    """Whether ``value``, read at the token's :func:`client_revocation_key`, revokes it.
    A token issued in the very second of the revocation is revoked too."""
    if value is None:
        return False
    try:
        revoked_at = float(value)
    except ValueError:
        return True  # not written by identity: fail closed
    issued_at = claims.get("iat")
    return not isinstance(issued_at, int | float) or issued_at <= revoked_at


def revoke_client(client: redis.Redis, namespace: str, client_id: str,
                  ttl_seconds: int) -> None:
    """Revoke every token issued to ``client_id`` until now, for ``ttl_seconds`` (the
    longest a token of any client may live, after which none issued before is left)."""
    client.set(client_revocation_key(namespace, client_id), str(int(time.time())).encode(),
               ex=max(int(ttl_seconds), 1))


class DenyList:
    """The revoked ``jti``s and clients identity writes to Redis (see :func:`revoke_jti`,
    :func:`revoke_client`), read through ``watched`` when given (held in process until
    Redis pushes a change)."""

    def __init__(self, client: redis.Redis, namespace: str,
                 watched: WatchedKeys | None = None) -> None:
        self.redis = client
        self.namespace = namespace
        self.watched = watched
        if watched is not None:
            watched.watch(self.key(""))
            watched.watch(client_revocation_key(namespace, ""))

    def key(self, jti: str) -> str:
        return deny_key(self.namespace, jti)

    def _mget(self, keys: list[str]) -> list[bytes | str | None]:
        if self.watched is not None:
            return self.watched.mget(keys)
        return list(self.redis.mget(keys))

    def is_revoked(self, jti: str) -> bool:
        """Fails closed: if Redis cannot answer, the token is treated as revoked."""
        try:
            return self._mget([self.key(jti)])[0] is not None
        except redis.RedisError:
            log.warning("deny-list unavailable; refusing token")
            return True

    def revoked(self, claims: dict[str, Any]) -> bool:
        """Whether the token of ``claims`` is revoked, by its ``jti`` or its client (one
        read of both keys). Fails closed as :meth:`is_revoked` does."""
        keys = revocation_keys(self.namespace, claims)
        if not keys:
            return False
        try:
            return revoked_by(claims, self._mget(keys))
        except redis.RedisError:
            log.warning("deny-list unavailable; refusing token")
            return True

    def client_revoked(self, claims: dict[str, Any]) -> bool:
        """Whether the token's client was revoked after it was issued (fails closed)."""
        if not claims.get("client_id"):
            return False
        try:
            value = self._mget([client_revocation_key(self.namespace,
                                                      str(claims["client_id"]))])[0]
        except redis.RedisError:
            log.warning("deny-list unavailable; refusing token")
            return True
        return client_revoked(claims, value)


class TokenVerifier:
    """Verifies one service's incoming access tokens."""

    def __init__(self, jwks: JWKSCache, issuer: str, audience: str | Iterable[str], *,
                 leeway: int = 30, is_revoked: Callable[[str], bool] | None = None,
                 deny_list: DenyList | None = None, claims_ttl: float = 30.0,
                 claims_cache_size: int = 10_000) -> None:
        self.jwks = jwks
        self.issuer = issuer
        self.audiences = {audience} if isinstance(audience, str) else set(audience)
        self.leeway = leeway
        self.deny_list = deny_list
        self.is_revoked = is_revoked or (deny_list.is_revoked if deny_list else None)
        self.claims = ClaimsCache(max_entries=claims_cache_size, ttl=claims_ttl)

    def verify(self, token: str, *, check_revocation: bool = True) -> dict[str, Any]:
        """The token's claims (a fresh dict), or :class:`InvalidToken`.

        With ``check_revocation=False`` the caller must check the deny-list itself.
        """
        digest = hashlib.sha256(token.encode()).digest()
        now = time.time()
        claims = self.claims.get(digest, now)
        if claims is None:
            claims = self._verify_signed(token, now)
            deadline = min(now + self.claims.ttl, float(claims["exp"]) + self.leeway)
            self.claims.put(digest, claims, deadline)
        if check_revocation and self.revoked(claims):
            raise InvalidToken("the token has been revoked")
        return dict(claims)

    def revoked(self, claims: dict[str, Any]) -> bool:
        """Whether the token of (verified) ``claims`` is revoked: by the Redis deny-list
        (its ``jti`` or its client, one read), else by ``is_revoked`` (``jti`` only)."""
        if self.deny_list is not None and self.is_revoked == self.deny_list.is_revoked:
            return self.deny_list.revoked(claims)
        jti = claims.get("jti")
        return self.is_revoked is not None and bool(jti) and self.is_revoked(str(jti))

    def _verify_signed(self, token: str, now: float) -> dict[str, Any]:
        try:
            header = jws.extract_compact(token.encode()).headers()
        except (JoseError, ValueError, UnicodeError):
            raise InvalidToken("the token is malformed") from None
        if header.get("alg") not in ALGORITHMS:
            raise InvalidToken("the token's algorithm is not accepted")
        if not is_access_token_header(header):
            raise InvalidToken("the token is not an access token")
        kid = header.get("kid")
        try:
            decoded = jwt.decode(token, self.jwks.keys_for(kid), algorithms=ALGORITHMS)
        except JoseError:
            raise InvalidToken("the token's signature is not valid") from None
        claims = dict(decoded.claims)
        self._check_claims(claims, now)
        return claims

    def _check_claims(self, claims: dict[str, Any], now: float) -> None:
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


def revoke_jti(client: redis.Redis, namespace: str, jti: str, ttl_seconds: int) -> None:
    """Put ``jti`` on the deny-list until the token would have expired anyway."""
    client.set(deny_key(namespace, jti), b"1", ex=max(int(ttl_seconds), 1))


def init_auth(app: Flask, audience: str | Iterable[str]) -> TokenVerifier:
    """Attach a :class:`TokenVerifier` for ``audience`` to ``app`` (from its settings)."""
    ctx = app.extensions["portico"]
    settings = ctx.settings
    verifier = TokenVerifier(
        JWKSCache(settings.jwks_url), settings.issuer, audience,
        deny_list=DenyList(ctx.redis, settings.redis_namespace, ctx.watched),
    )
    app.extensions["portico.auth"] = verifier
    return verifier


def bearer_token(authorization: str) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, or None."""
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def _bearer_token() -> str | None:
    return bearer_token(request.headers.get("Authorization", ""))


def fast_route_claims(verifier: TokenVerifier, authorization: str
                      ) -> tuple[dict[str, Any], str | None] | None:
    """For a fast route (:mod:`services.common.fastpath`): the bearer token's verified
    claims and the deny-list key the route must read along with its own keys (None: the
    token has no ``jti`` to check), or None when the route must leave the request to the
    app: no token, an invalid one, or a deny-list that is not the Redis one.

    The route must also leave it to the app when that key holds a value (revoked) or
    Redis cannot answer, so that the app's 401 is the only answer a revoked token gets.
    """
    token = bearer_token(authorization)
    if token is None:
        return None
    try:
        claims = verifier.verify(token, check_revocation=False)
    except InvalidToken:
        return None
    jti = claims.get("jti")
    if not jti or verifier.is_revoked is None:
        return claims, None
    if verifier.deny_list is None or verifier.deny_list.client_revoked(claims):
        return None
    return claims, verifier.deny_list.key(str(jti))


def _unauthorized(reason: str | None) -> Problem:
    challenge = 'Bearer realm="portico"'
    if reason:
        challenge += f', error="invalid_token", error_description="{reason}"'
    return Problem(401, "unauthorized", reason or "A bearer token is required.",
                   headers={"WWW-Authenticate": challenge})


def authenticate() -> dict[str, Any]:
    """Verify the request's bearer token and return its claims (cached on ``g``)."""
    return _authenticate(check_revocation=True)


def _authenticate(*, check_revocation: bool) -> dict[str, Any]:
    if "token_claims" in g:
        return cast(dict[str, Any], g.token_claims)
    token = _bearer_token()
    if token is None:
        raise _unauthorized(None)
    verifier: TokenVerifier = current_app.extensions["portico.auth"]
    try:
        claims = verifier.verify(token, check_revocation=check_revocation)
    except InvalidToken as exc:
        raise _unauthorized(exc.reason) from None
    if not check_revocation and claims.get("jti") and verifier.is_revoked is not None:
        g.revocation_pending = str(claims["jti"])
        g.revocation_claims = claims
    g.token_claims = claims
    return claims


def revocation_key() -> str | None:
    """The deny-list key a ``defer_revocation`` view reads along with its own keys (None: no
    check is pending, or this verifier's deny-list is not the Redis one)."""
    jti = g.get("revocation_pending")
    verifier: TokenVerifier = current_app.extensions["portico.auth"]
    if jti is None or verifier.deny_list is None:
        return None
    return verifier.deny_list.key(jti)


def settle_revocation(value: bytes | str | None, *, unavailable: bool = False) -> None:
    """Finish a deferred deny-list check with the value read at :func:`revocation_key`.

    401 if the token is revoked, or if Redis could not answer (``unavailable``: fail
    closed, as the per-request check does).
    """
    if g.get("revocation_pending") is None:
        return
    if unavailable or revocation_key() is None:
        _check_pending_revocation()
        return
    g.revocation_pending = None
    verifier: TokenVerifier = current_app.extensions["portico.auth"]
    if value or (verifier.deny_list is not None
                 and verifier.deny_list.client_revoked(g.get("revocation_claims") or {})):
        raise _unauthorized("the token has been revoked")


def _check_pending_revocation() -> None:
    jti = g.get("revocation_pending")
    if jti is None:
        return
    g.revocation_pending = None
    verifier: TokenVerifier = current_app.extensions["portico.auth"]
    if verifier.revoked(g.get("revocation_claims") or {"jti": jti}):
        raise _unauthorized("the token has been revoked")


def token_scopes(claims: dict[str, Any]) -> set[str]:
    scope = claims.get("scope") or ""
    return set(scope.split()) if isinstance(scope, str) else set(scope)


def require_auth(*scopes: str, defer_revocation: bool = False) -> Callable[[F], F]:
    """Decorator: the view needs a valid bearer token holding every one of ``scopes``.

    ``defer_revocation``: the view folds the deny-list read into its own Redis round
    trip (:func:`revocation_key`, :func:`settle_revocation`); whatever it does, a
    revoked token never gets an answer other than 401.
    """

    def decorate(view: F) -> F:
        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            claims = _authenticate(check_revocation=not defer_revocation)
            try:
                _require_scopes(claims, scopes)
                result = view(*args, **kwargs)
            except Exception:
                _check_pending_revocation()  # a revoked token hears 401, not the view's error
                raise
            _check_pending_revocation()
            return result

        return cast(F, wrapper)

    return decorate


def _require_scopes(claims: dict[str, Any], scopes: tuple[str, ...]) -> None:
    missing = set(scopes) - token_scopes(claims)
    if missing:
        raise Problem(
            403, "insufficient-scope",
            f"The token lacks the scope(s): {' '.join(sorted(missing))}.",
            headers={"WWW-Authenticate":
                     f'Bearer realm="portico", error="insufficient_scope", '
                     f'scope="{" ".join(sorted(scopes))}"'},
        )


def current_claims() -> dict[str, Any]:
    """The verified claims of the current request's token (after :func:`require_auth`)."""
    return authenticate()
