"""Revocation (RFC 7009) and introspection (RFC 7662) over Portico's tokens.

Access tokens are JWTs: revoking one puts its ``jti`` on the Redis deny-list until it
would have expired; revoking a refresh token revokes its whole family.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

import redis
from authlib.oauth2.rfc6749 import OAuth2Error, TokenMixin, UnsupportedTokenTypeError
from authlib.oauth2.rfc7009 import RevocationEndpoint as _RevocationEndpoint
from authlib.oauth2.rfc7662 import IntrospectionEndpoint as _IntrospectionEndpoint
from flask import g
from sqlalchemy import select

from services.common.auth import revocation_keys, revoked_by

from .models import RefreshToken
from .records import RefreshRecord, digest
from .tokens import (
    TokenRejected,
    decode_own_token,
    is_token_revoked,
    revoke_access_token,
)


class AccessRecord(TokenMixin):
    """A verified access token's claims as authlib's token model."""

    def __init__(self, claims: dict[str, Any], revoked: bool) -> None:
        self.claims = claims
        self.revoked = revoked

    def check_client(self, client) -> bool:
        return self.claims.get("client_id") == client.get_client_id()

    def get_scope(self) -> str:
        return self.claims.get("scope", "")

    def get_expires_in(self) -> int:
        return int(self.claims["exp"] - time.time())

    def is_expired(self) -> bool:
        return self.claims["exp"] <= time.time()

    def is_revoked(self) -> bool:
        return self.revoked


def _may_be_refresh_token(token_string: str, hint: str | None) -> bool:
    # Refresh tokens are 64 characters; access tokens (JWTs) several hundred.
    return hint != "access_token" and len(token_string) < 200


def _find(endpoint, token_string: str, hint: str | None):
    provider = endpoint.server.provider
    ahead: ReadAhead | None = getattr(g.get("oauth_request"), "read_ahead", None)
    if ahead is not None and ahead.token == token_string:
        return None if ahead.claims is None else AccessRecord(ahead.claims, ahead.revoked)
    if _may_be_refresh_token(token_string, hint):
        with provider.db.read() as session:
            row = session.scalar(select(RefreshToken).where(
                RefreshToken.token_digest == digest(token_string)))
            if row is not None:
                session.expunge(row)
                return RefreshRecord(row)
    claims = _own_claims(provider, token_string)
    if claims is None:
        return None
    return AccessRecord(claims, is_token_revoked(provider.redis, provider.namespace, claims))


def _own_claims(provider, token_string: str) -> dict[str, Any] | None:
    """An access token's claims if this issuer signed it (expired or not), else None."""
    try:
        return decode_own_token(provider.keyring, token_string, provider.settings.issuer,
                                check_exp=False, access_token=True)
    except TokenRejected:
        return None


@dataclass(frozen=True)
class ReadAhead:
    """What introspecting an access token needs from Redis, read together before client
    authentication (held in process by the provider's watched keys, else one MGET): the
    clients version (see ``ClientCache.get``) and the token's deny-list entries (its
    ``jti``'s and its client's). ``claims`` is None for a token this issuer did not sign."""

    token: str
    claims: dict[str, Any] | None
    revoked: bool
    clients_version: bytes | None


def read_ahead(provider, form) -> ReadAhead | None:
    """None where there is nothing to combine (a refresh token, no token) or Redis failed:
    the usual path then reads each key itself, and fails closed as it always does."""
    token = form.get("token")
    if not token or _may_be_refresh_token(token, form.get("token_type_hint")):
        return None
    claims = _own_claims(provider, token)
    keys = revocation_keys(provider.namespace, claims) if claims else []
    try:
        replies = provider.watched.mget([provider.clients.key, *keys])
    except redis.RedisError:
        return None
    revoked = bool(claims) and bool(keys) and revoked_by(claims, replies[1:])
    return ReadAhead(token, claims, revoked, replies[0])


class UnsupportedTokenType(OAuth2Error):
    """authlib answers an unknown ``token_type_hint`` with a 401; RFC 7009 §2.2.1 and RFC
    7662 §2.3 answer errors as RFC 6749 §5.2 does: 400 (401 is for client authentication)."""

    error = "unsupported_token_type"
    status_code = 400


class _HintRefusedWith400:
    """Revocation's and introspection's parameter check, an unknown hint answered 400."""

    def check_params(self, request, client):
        try:
            super().check_params(request, client)  # type: ignore[misc]
        except UnsupportedTokenTypeError:
            raise UnsupportedTokenType(
                "token_type_hint must be access_token or refresh_token.") from None


class RevocationEndpoint(_HintRefusedWith400, _RevocationEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]

    def query_token(self, token_string, token_type_hint):
        return _find(self, token_string, token_type_hint)

    def revoke_token(self, token, request) -> None:
        provider = self.server.provider
        if isinstance(token, RefreshRecord):
            with provider.db.transaction() as session:
                provider.revoke_family(session, token.row.family_id, reason="revoked")
        elif isinstance(token, AccessRecord) and token.claims.get("jti"):
            revoke_access_token(provider.redis, provider.namespace, str(token.claims["jti"]),
                                float(token.claims["exp"]))


class IntrospectionEndpoint(_HintRefusedWith400, _IntrospectionEndpoint):
    CLIENT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def authenticate_endpoint_client(self, request):
        # One Redis round trip where authentication and the token look-up would make two.
        request.read_ahead = read_ahead(self.server.provider, request.form)
        return super().authenticate_endpoint_client(request)

    def query_token(self, token_string, token_type_hint):
        return _find(self, token_string, token_type_hint)

    def check_permission(self, token, client, request) -> bool:
        """The token's own client, or a resource server the token names in its ``aud``
        (its client id is the audience). A client that may merely *ask* for the same
        audiences learns nothing about another client's token: it is told inactive."""
        if token.check_client(client):
            return True
        if isinstance(token, AccessRecord):
            aud = token.claims.get("aud")
            auds = {aud} if isinstance(aud, str) else set(aud or [])
            return client.get_client_id() in auds
        return False

    def introspect_token(self, token) -> dict[str, Any]:
        issuer = self.server.provider.settings.issuer
        if isinstance(token, RefreshRecord):
            row = token.row
            return {"active": True, "token_type": "refresh_token", "client_id": row.client_id,
                    "sub": row.user_id, "scope": row.scope, "iss": issuer,
                    "exp": int(row.expires_at.timestamp())}
        claims = token.claims
        body = {"active": True, "token_type": "Bearer"}
        for name in ("scope", "client_id", "sub", "aud", "iss", "exp", "iat", "nbf", "jti",
                     "company_id", "entitlements"):
            if name in claims:
                body[name] = claims[name]
        return body
