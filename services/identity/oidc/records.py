"""authlib's model interfaces over Portico's rows (clients, codes, refresh tokens)."""

from __future__ import annotations

import hashlib
import time

from authlib.oauth2.rfc6749 import ClientMixin, TokenMixin, list_to_scope, scope_to_list
from authlib.oidc.core import AuthorizationCodeMixin

from ..clients import secret_matches
from .models import AuthorizationCode, OAuthClient, RefreshToken


def digest(value: str) -> str:
    """SHA-256 of a high-entropy token: how codes and refresh tokens are stored."""
    return hashlib.sha256(value.encode()).hexdigest()


class RegisteredClient(ClientMixin):
    """A client row as authlib sees it. Detached from the session: plain values only."""

    def __init__(self, row: OAuthClient, pepper: str) -> None:
        self.row = row
        self.client_id = row.client_id
        self.pepper = pepper
        self.id_token_signed_response_alg = row.id_token_signed_response_alg

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        # Only one registered URI may stand in for a missing redirect_uri.
        uris = self.row.redirect_uris or []
        return uris[0] if len(uris) == 1 else None

    def get_allowed_scope(self, scope: str | None) -> str | None:
        allowed = set(scope_to_list(self.row.scope) or [])
        if not scope:
            return ""
        requested = scope_to_list(scope)
        if not set(requested) <= allowed:
            return None
        return list_to_scope(requested)

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri in (self.row.redirect_uris or [])

    def check_client_secret(self, client_secret: str) -> bool:
        return secret_matches(self.pepper, self.row.secret_digest, client_secret)

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        return method == self.row.token_endpoint_auth_method

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code" and "authorization_code" in (self.row.grant_types or [])

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type in (self.row.grant_types or [])

    @property
    def public(self) -> bool:
        return bool(self.row.public)


class CodeRecord(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.user = None  # the code's user, when claimed with it (one statement)

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return self.row.auth_time

    def get_acr(self) -> str | None:
        return self.row.acr

    def get_amr(self) -> list[str] | None:
        return self.row.amr

    @property
    def code_challenge(self) -> str | None:
        return self.row.code_challenge

    @property
    def code_challenge_method(self) -> str | None:
        return self.row.code_challenge_method


class RefreshRecord(TokenMixin):
    def __init__(self, row: RefreshToken) -> None:
        self.row = row
        self.user = None  # the token's user, when loaded with it (refresh grant)

    def check_client(self, client: RegisteredClient) -> bool:
        return self.row.client_id == client.get_client_id()

    def get_scope(self) -> str:
        return self.row.scope

    def get_expires_in(self) -> int:
        return int(self.row.expires_at.timestamp() - time.time())

    def is_expired(self) -> bool:
        return self.row.expires_at.timestamp() <= time.time()

    def is_revoked(self) -> bool:
        return self.row.revoked_at is not None or self.row.used_at is not None

    def get_user(self):
        return self.row.user_id

    def get_client(self):
        return self.row.client_id
