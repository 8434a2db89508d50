"""The token and introspection endpoints' common requests, answered below Flask.

Why: Flask's and authlib's request machinery cost a token more than signing it (see
:mod:`services.common.fastpath` for the layer and its contract).

What is answered here, and only in its plain form:

* ``grant_type=client_credentials`` with ``client_secret_basic`` or ``client_secret_post``
  and at most a ``scope``;
* ``grant_type=refresh_token`` on PostgreSQL with those methods or ``none`` (a public
  client), the token rotated by the one statement the grant uses
  (``grants.rotate_in_one_statement``);
* introspection of an access token (not a refresh token) by a client authenticated with
  a secret.

Everything else (another grant or parameter, a repeated one, a client that fails to
authenticate, ``private_key_jwt``, a rate limit reached, a refresh token the one
statement cannot rotate, any error) is declined *before anything is written* and the
request is replayed through authlib's server, which gives every refusal and unusual
answer. The rules both paths apply are the same functions: client look-up and secret
check (``Provider.client``, ``RegisteredClient``), the machine scope
(``grants.machine_scope``), the rotation, the token body (``server.issue_tokens``),
introspection's permission check and payload (the ``IntrospectionEndpoint``'s own
methods). Tests send every request both ways and compare the answers.

One exception to "decline before anything is written": a refresh token rotated by the
one statement has been used up, so from then on this path answers whatever happens (a
failure after the rotation is a 503 or 500, as in the view, never a replay that the
view would take for a stolen token's reuse).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl

import redis
from authlib.oauth2.rfc6749.util import extract_basic_authorization

from services.common.app import log_dependency_unavailable
from services.common.db import is_postgresql
from services.common.errors import DEPENDENCY_ERRORS, RETRY_DEPENDENCY_AFTER
from services.common.fastpath import FORM, FastAnswer, FastRequest, FastRoutes, json_answer

from ..ratelimit import TokenLimits
from .client_cache import UNREAD
from .endpoints import AccessRecord, IntrospectionEndpoint, read_ahead
from .grants import machine_scope, rotate_in_one_statement
from .keys import SigningKeyUnavailable
from .records import RegisteredClient
from .server import OAUTH_UNAVAILABLE, AuthorizationServer, count_client, issue_tokens

log = logging.getLogger("portico.identity.oidc")

# authlib's headers for token and introspection answers (``default_json_headers``), which
# the views send too (the Content-Type is FastAnswer's own).
NO_STORE = (("Cache-Control", "no-store"), ("Pragma", "no-cache"))
_CREDENTIALS = frozenset({"client_id", "client_secret"})
_CLIENT_CREDENTIALS = frozenset({"grant_type", "scope"}) | _CREDENTIALS
_REFRESH = frozenset({"grant_type", "refresh_token"}) | _CREDENTIALS
_INTROSPECTION = frozenset({"token", "token_type_hint"}) | _CREDENTIALS


def read_form(body: bytes) -> dict[str, str] | None:
    """The form's fields, or None if it is not a plain one: not ASCII, malformed, or a
    field given twice (the view answers ``invalid_request`` for that)."""
    if not body.isascii():
        return None
    try:
        pairs = parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=True)
    except ValueError:
        return None
    form = dict(pairs)
    return form if len(form) == len(pairs) else None


def _answer(body: dict[str, Any]) -> FastAnswer:
    # As authlib's Flask server writes a payload (flask.json: sorted keys, ASCII), so both
    # paths send the same bytes.
    return FastAnswer(200, json.dumps(body, sort_keys=True).encode(), headers=NO_STORE)


def _unavailable(exc: Exception) -> FastAnswer:
    """As the app answers a dependency that is down (identity/app.py, ``_unavailable``)."""
    log_dependency_unavailable(exc)
    return _error(503, OAUTH_UNAVAILABLE, ("Retry-After", RETRY_DEPENDENCY_AFTER))


def _error(status: int, body: dict[str, str], *headers: tuple[str, str]) -> FastAnswer:
    """An RFC 6749 error body as the app's handlers write it (Flask's ``jsonify``)."""
    return FastAnswer(status, json_answer(body).body, headers=(*NO_STORE, *headers))


class FastTokenEndpoints:
    """The fast handlers of ``POST /token`` and ``POST /introspect``."""

    def __init__(self, server: AuthorizationServer, limits: TokenLimits) -> None:
        self.provider = server.provider
        self.limits = limits
        self.introspection = IntrospectionEndpoint(server)
        self.rotates_in_one_statement = is_postgresql(self.provider.db.engine)

    def install(self, routes: FastRoutes) -> None:
        routes.add("POST", "/token", self.token, FORM)
        routes.add("POST", "/introspect", self.introspect, FORM)

    # /token ----------------------------------------------------------------------------
    def token(self, request: FastRequest) -> FastAnswer | None:
        form = read_form(request.body)
        if form is None:
            return None
        grant_type = form.get("grant_type")
        if grant_type == "client_credentials" and form.keys() <= _CLIENT_CREDENTIALS:
            fields = _CLIENT_CREDENTIALS
        elif (grant_type == "refresh_token" and form.keys() <= _REFRESH
              and form.get("refresh_token") and self.rotates_in_one_statement):
            fields = _REFRESH
        else:
            return None
        if self.limits.apply(request.environ):
            return None  # the view answers 429 (the request was counted once, here)
        headers = {"Authorization": request.header("Authorization")}
        client = self._client(headers, form, public_allowed=fields is _REFRESH)
        if client is None:
            return None
        if count_client(self.limits, request.environ, client):
            return None  # as above
        if not client.check_grant_type(grant_type):
            return None
        if fields is _CLIENT_CREDENTIALS:
            return self._client_credentials(client, form)
        return self._refresh(client, form["refresh_token"])

    def _client_credentials(self, client: RegisteredClient, form: dict[str, str]
                            ) -> FastAnswer | None:
        scope = machine_scope(client, form.get("scope"))
        if scope is None:
            return None
        token, _ = issue_tokens(self.provider, client, user=None, scope=scope,
                                include_refresh_token=False, requested=[],
                                origin_resource=None)
        return _answer(token)

    def _refresh(self, client: RegisteredClient, refresh_token: str) -> FastAnswer | None:
        # The active key first: without one, decline while nothing is written yet.
        self.provider.keyring.signer("ES256")
        try:
            rotated = rotate_in_one_statement(self.provider, client, refresh_token)
        except DEPENDENCY_ERRORS as exc:
            # Whether it committed is unknown: the view would answer 503 too, and a replay
            # through it could take this very request for a reuse of the token.
            return _unavailable(exc)
        if rotated is None:
            return None
        record, planned = rotated
        try:
            token, _ = issue_tokens(self.provider, client, user=record.user,
                                    scope=record.get_scope(), include_refresh_token=True,
                                    requested=[], origin_resource=record.row.resource,
                                    planned=planned, auth_time=record.row.auth_time,
                                    acr=record.row.acr)
        except (redis.RedisError, SigningKeyUnavailable, *DEPENDENCY_ERRORS) as exc:
            return _unavailable(exc)
        except Exception:
            log.exception("unhandled error after a refresh token was rotated")
            return _error(500, {"error": "server_error",
                                "error_description": "An unexpected error occurred."})
        return _answer(token)

    # /introspect ------------------------------------------------------------------------
    def introspect(self, request: FastRequest) -> FastAnswer | None:
        form = read_form(request.body)
        if form is None or not form.keys() <= _INTROSPECTION:
            return None
        # Only access tokens (read_ahead is None for anything that may be a refresh token).
        ahead = read_ahead(self.provider, form) if form.get("token_type_hint") in (
            None, "access_token") else None
        if ahead is None:
            return None
        headers = {"Authorization": request.header("Authorization")}
        client = self._client(headers, form, public_allowed=False,
                              version=ahead.clients_version)
        if client is None:
            return None
        token = None if ahead.claims is None else AccessRecord(ahead.claims, ahead.revoked)
        if token is not None and not self.introspection.check_permission(token, client, None):
            token = None
        return _answer(self.introspection.create_introspection_payload(token))

    # client authentication --------------------------------------------------------------
    def _client(self, headers: Mapping[str, str], form: Mapping[str, str], *,
                public_allowed: bool, version: object = UNREAD) -> RegisteredClient | None:
        """The client authenticated by ``client_secret_basic``, ``client_secret_post`` or
        (``public_allowed``) ``none``, else None; credentials sent two ways are declined."""
        sent_in_form = bool(form.keys() & _CREDENTIALS)
        if headers["Authorization"]:
            if sent_in_form:
                return None
            client_id, secret = extract_basic_authorization(headers)
            method = "client_secret_basic"
        else:
            client_id, secret = form.get("client_id"), form.get("client_secret")
            method = "client_secret_post" if secret else "none"
        if not client_id or (method == "none" and not public_allowed) or (
                method != "none" and not secret):
            return None
        client = self.provider.client(client_id, version)
        if client is None or not client.check_endpoint_auth_method(method, "token"):
            return None
        if method == "none":
            return client if client.public else None
        return client if client.check_client_secret(secret) else None


def init_fast_tokens(server: AuthorizationServer, limits: TokenLimits,
                     routes: FastRoutes) -> None:
    FastTokenEndpoints(server, limits).install(routes)
