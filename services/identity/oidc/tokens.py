"""Access tokens (JWT, RFC 9068), their revocation, and token families.

A *family* is every token descended from one authorization code: the code's access token
and refresh token, and all their rotations. Replaying a used code or a used refresh
token revokes the whole family: refresh tokens in the database, access tokens by ``jti``
on the Redis deny-list that ``services/common/auth`` and introspection consult.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import redis
from joserfc import jwt
from joserfc.errors import JoseError
from sqlalchemy import bindparam, insert, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.common.auth import (
    deny_key,
    is_access_token_header,
    revocation_keys,
    revoke_jti,
    revoked_by,
)
from services.common.db import is_postgresql
from services.common.events import utcnow

from .keys import Keyring
from .models import IssuedAccessToken, RefreshToken

ACCEPTED_ALGS = ["ES256", "RS256"]


@dataclass(frozen=True)
class AccessToken:
    value: str
    jti: str
    expires_at: int


def mint_access_token(keyring: Keyring, *, issuer: str, sub: str, client_id: str,
                      aud: str | list[str], scope: str, ttl: int,
                      extra: dict[str, Any] | None = None, jti: str | None = None,
                      issued_at: int | None = None) -> AccessToken:
    """Sign an RFC 9068 access token with the active ES256 key (with ``jti`` and
    ``issued_at`` when they were chosen beforehand, else a new jti, now)."""
    now = int(time.time()) if issued_at is None else issued_at
    jti = jti or uuid.uuid4().hex
    claims: dict[str, Any] = {"iss": issuer, "sub": sub, "aud": aud, "exp": now + ttl,
                              "iat": now, "nbf": now, "jti": jti, "client_id": client_id,
                              "scope": scope}
    if extra:
        claims.update({k: v for k, v in extra.items() if v is not None})
    signer = keyring.signer("ES256")
    header = {"alg": "ES256", "kid": signer.kid, "typ": "at+jwt"}
    return AccessToken(jwt.encode(header, claims, signer), jti, now + ttl)


class TokenRejected(Exception):
    """Not a token this issuer signed, or malformed."""


def decode_own_token(keyring: Keyring, token: str, issuer: str, check_exp: bool = True, *,
                     access_token: bool = False) -> dict[str, Any]:
    """Claims of a JWT this issuer signed (signature with a published key, ``iss``), and
    with ``access_token`` one of its access tokens (``typ: at+jwt``), not an ID or logout
    token signed by the same keys.

    The token is parsed once: joserfc refuses any ``alg`` outside ``ACCEPTED_ALGS`` (``none``
    and HS256 included) and any ``kid`` it does not publish before it checks a signature."""
    try:
        decoded = jwt.decode(token, keyring.material().verify_set, algorithms=ACCEPTED_ALGS)
    except (JoseError, ValueError, UnicodeError):
        raise TokenRejected("malformed, unknown key or algorithm, or bad signature") from None
    if access_token and not is_access_token_header(decoded.header):
        raise TokenRejected("not an access token")
    claims = dict(decoded.claims)
    if claims.get("iss") != issuer:
        raise TokenRejected("issuer")
    exp = claims.get("exp")
    if check_exp and (not isinstance(exp, int | float) or exp <= time.time()):
        raise TokenRejected("expired")
    return claims


def is_jti_revoked(client: redis.Redis, namespace: str, jti: str) -> bool:
    return bool(client.exists(deny_key(namespace, jti)))


def is_token_revoked(client: redis.Redis, namespace: str, claims: dict[str, Any]) -> bool:
    """Whether the access token of ``claims`` is revoked, by its ``jti`` or because its
    client was deleted (one ``MGET``)."""
    keys = revocation_keys(namespace, claims)
    return bool(keys) and revoked_by(claims, client.mget(keys))


def revoke_access_token(client: redis.Redis, namespace: str, jti: str, exp: float) -> None:
    remaining = int(exp - time.time())
    if remaining > 0:
        revoke_jti(client, namespace, jti, remaining)


_ISSUED = IssuedAccessToken.__table__
_REFRESH = RefreshToken.__table__
_REFRESH_COLUMNS = ("token_digest", "family_id", "client_id", "user_id", "scope", "resource",
                    "auth_time", "sid", "acr", "created_at", "expires_at")
# Built once with bind parameters: an ORM insert and its cache key rebuilt per call cost more.
_INSERT_ISSUED = insert(_ISSUED).values(jti=bindparam("a_jti"), family_id=bindparam("a_family"),
                                        expires_at=bindparam("a_expires_at"))
_INSERT_REFRESH = insert(_REFRESH).values({c: bindparam(f"r_{c}") for c in _REFRESH_COLUMNS})
_INSERT_BOTH = _INSERT_REFRESH.add_cte(_INSERT_ISSUED.cte("issued_access_token"))


def record_access_token(session: Session | Connection, family_id: str, token: AccessToken,
                        refresh: dict[str, Any] | None = None) -> None:
    """Remember ``token``'s ``jti`` in its family and insert the ``refresh`` token row (its
    column values, every one of ``_REFRESH_COLUMNS``) if any: on PostgreSQL one statement
    (a data-modifying CTE)."""
    params: dict[str, Any] = {
        "a_jti": token.jti, "a_family": family_id,
        "a_expires_at": utcnow() + timedelta(seconds=token.expires_at - int(time.time()))}
    if refresh is None:
        session.execute(_INSERT_ISSUED, params)
        return
    refresh_params = {f"r_{c}": refresh[c] for c in _REFRESH_COLUMNS}
    if is_postgresql(session):
        session.execute(_INSERT_BOTH, params | refresh_params)
    else:
        session.execute(_INSERT_ISSUED, params)
        session.execute(_INSERT_REFRESH, refresh_params)


def revoke_family(session: Session | Connection, client: redis.Redis, namespace: str,
                  family_id: str) -> int:
    """Revoke every refresh token and live access token of ``family_id``. Returns the count."""
    now = utcnow()
    result = session.execute(
        update(RefreshToken).where(RefreshToken.family_id == family_id,
                                   RefreshToken.revoked_at.is_(None)).values(revoked_at=now))
    count = result.rowcount or 0  # type: ignore[attr-defined]
    for row in session.execute(select(_ISSUED.c.jti, _ISSUED.c.expires_at).where(
            _ISSUED.c.family_id == family_id)):
        expires = row.expires_at
        if expires > now:
            revoke_access_token(client, namespace, row.jti, expires.timestamp())
            count += 1
    return count
