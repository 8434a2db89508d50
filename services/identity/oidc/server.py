"""The authorization server: authlib's Flask server wired to Portico's storage and keys."""

from __future__ import annotations

import contextlib
import logging
import secrets
import time
from datetime import timedelta
from typing import Any

from authlib.integrations.flask_oauth2 import AuthorizationServer as FlaskAuthorizationServer
from authlib.oauth2.rfc6749 import OAuth2Error
from authlib.oauth2.rfc9207 import IssuerParameter
from flask import Flask, g, request
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.common.app import context
from services.common.auth import client_revocation_key, deny_key
from services.common.events import utcnow

from .. import clients
from ..ratelimit import TokenLimits, token_limits
from . import entitlements
from .client_cache import UNREAD, ClientCache, version_key
from .endpoints import IntrospectionEndpoint, RevocationEndpoint
from .grants import (
    AuthorizationCodeGrant,
    ClientCredentialsGrant,
    OpenIDCode,
    PlannedSuccessor,
    PrivateKeyJWT,
    RefreshTokenGrant,
    S256CodeChallenge,
)
from .keys import Keyring
from .models import OAuthClient
from .records import RegisteredClient, digest
from .tokens import AccessToken, mint_access_token, record_access_token, revoke_family

log = logging.getLogger("portico.identity.oidc")


# RFC 6749's body for a dependency that is down (Redis, the database, no signing key),
# sent with 503 and Retry-After by the app's handler and the fast routes alike.
OAUTH_UNAVAILABLE = {"error": "temporarily_unavailable",
                     "error_description": "The service is temporarily unavailable."}


class InvalidTargetError(OAuth2Error):
    """RFC 8707: the requested resource/audience is not one this client may ask for."""

    error = "invalid_target"


class TooManyTokenRequests(OAuth2Error):
    """A client that authenticated has used up its ``/token`` budget: 429, Retry-After."""

    error = "too_many_requests"
    status_code = 429

    def __init__(self, retry_after: int) -> None:
        super().__init__(description="Too many requests: slow down.")
        self.retry_after = retry_after

    def get_headers(self):
        return [*super().get_headers(), ("Retry-After", str(self.retry_after))]


def count_client(limits: TokenLimits, environ: dict[str, Any],
                 client: RegisteredClient) -> int | None:
    """Count a ``/token`` request against the client it authenticated as: None within
    its limit, else the seconds to wait. A public client proves nothing by naming itself,
    so its requests are limited per address only (a stranger cannot spend its budget)."""
    if client.public:
        return None
    return limits.apply_to_client(environ, client.get_client_id())


class Provider:
    """What the grants and endpoints reach: settings, database, Redis and the keyring."""

    def __init__(self, app: Flask) -> None:
        ctx = context(app)
        self.settings = ctx.settings
        self.db = ctx.db
        self.redis = ctx.redis
        self.namespace = ctx.settings.redis_namespace
        self.keyring = Keyring(ctx.db, ctx.settings.key_encryption_key)
        self.entitlements = entitlements.EntitlementsSource(self, ctx.registry)
        # The keys read on every token and introspection request: held in process.
        self.watched = ctx.watched
        self.watched.watch(version_key(self.namespace))
        self.watched.watch(deny_key(self.namespace, ""))
        self.watched.watch(client_revocation_key(self.namespace, ""))
        self.clients = ClientCache(ctx.redis, self.namespace, self._load_client, self.watched)
        clients.watch_client_changes(ctx.db.sessions, ctx.redis, self.namespace,
                                     ctx.settings.max_token_lifetime)

    def _load_client(self, client_id: str) -> RegisteredClient | None:
        with self.db.read() as session:
            row = session.get(OAuthClient, client_id)
            if row is None or row.disabled_at is not None:
                return None
            session.expunge(row)
        # Shared by the threads of this process: read-only from here on.
        return RegisteredClient(row, self.settings.client_secret_pepper)

    def client(self, client_id: str, version: bytes | None | object = UNREAD
               ) -> RegisteredClient | None:
        """The registered client ``client_id`` names, or None (``version``: the clients
        version if the caller has read it already, see ``ClientCache.get``)."""
        if not client_id or len(client_id) > 64:
            return None
        return self.clients.get(client_id, version)  # type: ignore[return-value]

    def lifetime(self, client: RegisteredClient, kind: str) -> int:
        """Seconds a ``kind`` (``access``, ``refresh`` or ``id``) token issued to ``client``
        lives: the client's own lifetime if it has one, else the service's."""
        return (getattr(client.row, f"{kind}_token_ttl")
                or getattr(self.settings, f"{kind}_token_ttl"))

    def revoke_family(self, session: Session | Connection, family_id: str, reason: str) -> None:
        count = revoke_family(session, self.redis, self.namespace, family_id)
        log.warning("token family revoked", extra={"reason": reason, "revoked": count})


def audience_for(client: RegisteredClient, requested: list[str],
                 origin_resource: str | None) -> str | list[str]:
    """RFC 8707 ``resource`` (or ``audience``) among the client's allowed audiences and,
    for a code or refresh token issued for a resource (``origin_resource``), only that
    one: a refresh narrows the grant, never widens it. Without one asked for: what the
    code or refresh token was issued for; else the client's audiences."""
    allowed = list(client.row.allowed_audiences or [])
    if origin_resource:
        allowed = [origin_resource] if origin_resource in allowed else []
        requested = requested or [origin_resource]
    if requested:
        unknown = [r for r in requested if r not in allowed]
        if unknown:
            raise InvalidTargetError(description="The requested resource is not allowed "
                                                 "for this client.")
        return requested[0] if len(requested) == 1 else requested
    if allowed:
        return allowed[0] if len(allowed) == 1 else allowed
    return client.get_client_id()


def issue_tokens(provider: Provider, client: RegisteredClient, *, user, scope: str,
                 include_refresh_token: bool, requested: list[str],
                 origin_resource: str | None, planned: PlannedSuccessor | None = None,
                 auth_time: int | None = None, acr: str | None = None
                 ) -> tuple[dict[str, Any], AccessToken]:
    """The token response's body and its signed access token, for every grant and for
    authlib's server and the fast routes alike. ``user`` None: client_credentials.
    ``planned``: the jti, issue time and refresh token a one-statement rotation stored.
    ``auth_time`` and ``acr``: when the user signed in and the level that sign-in reached
    (RFC 9068 §2.2.1), both from the code or refresh token the grant consumed, never
    from the request, so that a resource server can ask for a recent sign-in or a
    stronger one (RFC 9470): identity's email change does, permissions' step-up does."""
    settings = provider.settings
    ttl = provider.lifetime(client, "access")
    audience = audience_for(client, requested, origin_resource)
    extra: dict[str, Any] = {}
    if user is not None:
        extra["company_id"] = user.company_id
        extra["auth_time"] = auth_time
        extra["acr"] = acr
        if "entitlements" in scope.split():
            extra["entitlements"] = provider.entitlements.for_user(user.id)
    access = mint_access_token(
        provider.keyring, issuer=settings.issuer,
        sub=user.id if user is not None else client.get_client_id(),
        client_id=client.get_client_id(), aud=audience,
        scope=scope, ttl=ttl, extra=extra, jti=planned.jti if planned else None,
        issued_at=planned.issued_at if planned else None)
    token: dict[str, Any] = {"token_type": "Bearer", "access_token": access.value,
                             "expires_in": ttl}
    if scope:
        token["scope"] = scope
    if include_refresh_token and user is not None and client.check_grant_type("refresh_token"):
        token["refresh_token"] = planned.refresh_token if planned else secrets.token_urlsafe(48)
    return token, access


class IssuerInAuthorizationResponses(IssuerParameter):
    """RFC 9207: every authorization response, errors included, names the issuer (``iss``),
    so that a client using several authorization servers can tell which one answered (the
    mix-up defence of RFC 9700 §4.4). authlib adds it to what ``create_authorization_response``
    answers; :meth:`AuthorizationServer.to_client` to the other redirects to a client."""

    def __init__(self, issuer: str) -> None:
        self.issuer = issuer

    def get_issuer(self) -> str:
        return self.issuer


class AuthorizationServer(FlaskAuthorizationServer):
    def __init__(self, provider: Provider) -> None:
        super().__init__()
        self.provider = provider
        self.issuer_parameter = IssuerInAuthorizationResponses(provider.settings.issuer)
        self.register_extension(self.issuer_parameter)

    def to_client(self, response):
        """``response``, a redirect to a client's verified redirect URI, with ``iss``."""
        self.issuer_parameter.add_issuer_parameter(self, response)
        return response

    # authlib hooks ---------------------------------------------------------------
    def authenticate_client(self, oauth_request, methods, endpoint="token"):
        """authlib's client authentication, then (at ``/token``) the per-client limit."""
        client = super().authenticate_client(oauth_request, methods, endpoint)
        if endpoint == "token":
            retry_after = count_client(token_limits(), request.environ, client)
            if retry_after is not None:
                raise TooManyTokenRequests(retry_after)
        return client

    def query_client(self, client_id: str) -> RegisteredClient | None:
        ahead = getattr(g.get("oauth_request"), "read_ahead", None)
        if ahead is not None:  # introspection read the clients version already
            return self.provider.client(client_id, version=ahead.clients_version)
        return self.provider.client(client_id)

    def generate_token(self, grant_type, client, user=None, scope=None, expires_in=None,
                       include_refresh_token=True) -> dict[str, Any]:
        oauth_request = g.get("oauth_request")
        origin = None if oauth_request is None else (oauth_request.authorization_code
                                                     or oauth_request.refresh_token)
        token, access = issue_tokens(
            self.provider, client, user=user, scope=scope or "",
            include_refresh_token=include_refresh_token,
            requested=request.form.getlist("resource") + request.form.getlist("audience"),
            origin_resource=origin.row.resource if origin is not None else None,
            # A refresh rotated in one statement has recorded its successors already.
            planned=getattr(oauth_request, "planned_successor", None),
            auth_time=origin.row.auth_time if origin is not None else None,
            acr=origin.row.acr if origin is not None else None)
        g.issued_access_token = access
        return token

    def save_token(self, token: dict[str, Any], oauth_request) -> None:
        origin = oauth_request.authorization_code or oauth_request.refresh_token
        if origin is None:
            return  # client_credentials: nothing to remember; revocation uses the jti
        if getattr(oauth_request, "planned_successor", None) is not None:
            return  # the refresh grant stored both with its claim, in one statement
        row = origin.row
        user = oauth_request.user
        client = oauth_request.client
        ttl = self.provider.lifetime(client, "refresh")
        refresh = None
        if "refresh_token" in token:
            refresh = {"token_digest": digest(token["refresh_token"]), "family_id": row.family_id,
                       "client_id": client.get_client_id(), "user_id": user.id,
                       "scope": token.get("scope", row.scope), "resource": row.resource,
                       "auth_time": row.auth_time, "sid": row.sid, "acr": row.acr,
                       "created_at": utcnow(),
                       "expires_at": utcnow() + timedelta(seconds=ttl)}
        # The refresh grant hands over its transaction (one per refresh); others get one.
        shared = getattr(oauth_request, "db_connection", None)
        with contextlib.nullcontext(shared) if shared is not None \
                else self.provider.db.transaction() as session:
            record_access_token(session, row.family_id, g.issued_access_token, refresh)

    def create_oauth2_request(self, req):
        oauth_request = super().create_oauth2_request(req)
        g.oauth_request = oauth_request
        return oauth_request

    def handle_response(self, status_code, payload, headers):
        response = super().handle_response(status_code, payload, headers)
        if request.endpoint and request.endpoint.startswith("oauth.token"):
            response.headers["Cache-Control"] = "no-store"
            response.headers["Pragma"] = "no-cache"
        return response


def init_oidc(app: Flask) -> AuthorizationServer:
    provider = Provider(app)
    server = AuthorizationServer(provider)
    server.init_app(app)
    server.register_client_auth_method("private_key_jwt", PrivateKeyJWT(provider))
    server.register_grant(AuthorizationCodeGrant, [OpenIDCode(provider), S256CodeChallenge(required=True)])
    server.register_grant(RefreshTokenGrant)
    server.register_grant(ClientCredentialsGrant)
    server.register_endpoint(RevocationEndpoint)
    server.register_endpoint(IntrospectionEndpoint)
    app.extensions["portico.oidc"] = server
    return server


def current_server() -> AuthorizationServer:
    from flask import current_app

    return current_app.extensions["portico.oidc"]


def now() -> int:
    return int(time.time())
