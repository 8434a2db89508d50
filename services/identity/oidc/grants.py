"""authlib grants under their plain names, with Portico's storage and hardening:
S256-only PKCE (required for public clients), single-use codes whose replay revokes the
family, rotating refresh tokens whose replay revokes the family, scoped client_credentials.
"""

from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta

from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Error,
    UnauthorizedClientError,
    grants,
)
from authlib.oauth2.rfc7523 import JWTBearerClientAssertion
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from authlib.oidc.core import grants as oidc_grants
from joserfc.jwk import KeySet
from sqlalchemy import String, bindparam, insert, select, update

from services.common.db import DriverStatement, UTCDateTime, is_postgresql
from services.common.events import utcnow
from services.common.streams import key

from ..acr import acr_for
from ..models import User, UserStatus
from .backchannel import remember_participant
from .models import AuthorizationCode, IssuedAccessToken, RefreshToken
from .records import CodeRecord, RefreshRecord, digest

AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt", "none"]


@dataclass
class AuthenticatedUser:
    """The end user behind an authorization request, with facts of their login session."""

    user: User
    auth_time: int
    sid: str | None
    amr: list[str] = field(default_factory=lambda: ["pwd"])

    @property
    def id(self) -> str:
        return self.user.id

    def get_user_id(self) -> str:
        return self.user.id


@dataclass(frozen=True)
class TokenUser:
    """What issuing tokens from a refresh token needs to know of its user."""

    id: str
    company_id: str | None
    status: str

    def get_user_id(self) -> str:
        return self.id

    @classmethod
    def of_row(cls, row) -> TokenUser:
        """From a claim's row (``user_id``, ``user_company_id``, ``user_status``)."""
        return cls(row.user_id, row.user_company_id, UserStatus(row.user_status))


_TOKENS = RefreshToken.__table__
_USERS = User.__table__
_CLAIM_COLUMNS = (*_TOKENS.c, _USERS.c.status.label("user_status"),
                  _USERS.c.company_id.label("user_company_id"))
# Built once with bind parameters (see ``tokens._INSERT_ISSUED`` for why).
_CLAIM_UNUSED = (update(_TOKENS)
                 .where(_TOKENS.c.token_digest == bindparam("digest"),
                        _TOKENS.c.client_id == bindparam("for_client"),
                        _TOKENS.c.used_at.is_(None), _TOKENS.c.revoked_at.is_(None),
                        _USERS.c.id == _TOKENS.c.user_id)
                 .values(used_at=bindparam("now")).returning(*_CLAIM_COLUMNS))
_FIND_BY_DIGEST = (select(*_CLAIM_COLUMNS)
                   .join_from(_TOKENS, _USERS, _USERS.c.id == _TOKENS.c.user_id)
                   .where(_TOKENS.c.token_digest == bindparam("digest")))
_CLAIM_BY_ID = (update(_TOKENS).where(_TOKENS.c.id == bindparam("token_id"),
                                      _TOKENS.c.used_at.is_(None))
                .values(used_at=bindparam("now")))

# A whole successful rotation as one statement (PostgreSQL, autocommitted): claim the
# token only if it is unused, unrevoked, unexpired, this client's and its user active;
# from the claimed row, record the new access token's jti and insert the successor. It
# answers the claimed row, or nothing, in which case the request takes the general path
# (a transaction that claims whatever it can and tells a replay from the rest). One round
# trip instead of four (BEGIN, claim, inserts, COMMIT).
_CLAIMED = (update(_TOKENS)
            .where(_TOKENS.c.token_digest == bindparam("digest"),
                   _TOKENS.c.client_id == bindparam("for_client"),
                   _TOKENS.c.used_at.is_(None), _TOKENS.c.revoked_at.is_(None),
                   _TOKENS.c.expires_at > bindparam("now"),
                   _USERS.c.id == _TOKENS.c.user_id, _USERS.c.status == UserStatus.ACTIVE)
            .values(used_at=bindparam("now")).returning(*_CLAIM_COLUMNS).cte("claimed"))
_ROTATED_ISSUED = insert(IssuedAccessToken.__table__).from_select(
    ["jti", "family_id", "expires_at"],
    select(bindparam("a_jti", type_=String), _CLAIMED.c.family_id,
           bindparam("a_expires_at", type_=UTCDateTime()))).cte("rotated_issued")
_ROTATED_SUCCESSOR = insert(_TOKENS).from_select(
    ["token_digest", "family_id", "client_id", "user_id", "scope", "resource", "auth_time",
     "sid", "acr", "created_at", "expires_at"],
    select(bindparam("r_digest", type_=String), _CLAIMED.c.family_id, _CLAIMED.c.client_id,
           _CLAIMED.c.user_id, _CLAIMED.c.scope, _CLAIMED.c.resource, _CLAIMED.c.auth_time,
           _CLAIMED.c.sid, _CLAIMED.c.acr, bindparam("now", type_=UTCDateTime()),
           bindparam("r_expires_at", type_=UTCDateTime()))).cte("rotated_successor")
# What issuing the successors reads of the claimed row (its timestamps cost the most to
# bring back and are not among them).
_ROTATE_IN_ONE = DriverStatement(
    select(_CLAIMED.c.family_id, _CLAIMED.c.client_id, _CLAIMED.c.user_id, _CLAIMED.c.scope,
           _CLAIMED.c.resource, _CLAIMED.c.auth_time, _CLAIMED.c.acr, _CLAIMED.c.user_status,
           _CLAIMED.c.user_company_id)
    .add_cte(_ROTATED_ISSUED).add_cte(_ROTATED_SUCCESSOR))


_CODES = AuthorizationCode.__table__
# Claim an unused, unexpired code of this client with its user in one statement
# (PostgreSQL: ``UPDATE .. FROM users .. RETURNING``), in the transaction that then saves
# the tokens (see ``AuthorizationCodeGrant.create_token_response``).
_CLAIM_CODE = (update(_CODES)
               .where(_CODES.c.code_digest == bindparam("digest"),
                      _CODES.c.client_id == bindparam("for_client"),
                      _CODES.c.used_at.is_(None), _CODES.c.expires_at > bindparam("now"),
                      _USERS.c.id == _CODES.c.user_id)
               .values(used_at=bindparam("now"))
               .returning(*_CODES.c, _USERS.c.status.label("user_status"),
                          _USERS.c.company_id.label("user_company_id")))
_FIND_CODE = select(_CODES).where(_CODES.c.code_digest == bindparam("digest"))
_CODE_USER = select(_USERS.c.id.label("user_id"), _USERS.c.status.label("user_status"),
                    _USERS.c.company_id.label("user_company_id")).where(
    _USERS.c.id == bindparam("user_id"))
_CLAIM_CODE_BY_DIGEST = (update(_CODES).where(_CODES.c.code_digest == bindparam("digest"),
                                              _CODES.c.used_at.is_(None))
                         .values(used_at=bindparam("now")))


@dataclass(frozen=True)
class PlannedSuccessor:
    """The new access token's ``jti`` and the new refresh token, chosen before the one
    statement that records them; ``generate_token`` issues exactly these."""

    jti: str
    refresh_token: str
    issued_at: int


def rotate_in_one_statement(provider, client, refresh_token: str
                            ) -> tuple[RefreshRecord, PlannedSuccessor] | None:
    """Rotate ``refresh_token`` of ``client`` with ``_ROTATE_IN_ONE`` (PostgreSQL): the
    claimed token (with its user) and the successor it stored, or None, in which case
    nothing was written and the general path must decide (replay, expiry, another
    client's token, an inactive user)."""
    planned = PlannedSuccessor(jti=uuid.uuid4().hex, refresh_token=secrets.token_urlsafe(48),
                               issued_at=int(time.time()))
    now = utcnow()
    access_ttl = provider.lifetime(client, "access")
    refresh_ttl = provider.lifetime(client, "refresh")
    found = _ROTATE_IN_ONE.first(provider.db, {
        "digest": digest(refresh_token), "for_client": client.get_client_id(),
        "now": now, "a_jti": planned.jti,
        "a_expires_at": now + timedelta(seconds=access_ttl),
        "r_digest": digest(planned.refresh_token),
        "r_expires_at": now + timedelta(seconds=refresh_ttl)})
    if found is None:
        return None
    record = RefreshRecord(found)
    record.user = TokenUser.of_row(found)
    return record, planned


def machine_scope(client, requested: str | None) -> str | None:
    """The scope a client_credentials token gets: what was asked if the client may have
    all of it (else None: ``invalid_scope``); if nothing was asked, every scope the client
    is registered for that makes sense without a user."""
    if requested:
        return client.get_allowed_scope(requested)
    return " ".join(s for s in client.row.scope.split() if s not in ("openid", "offline_access"))


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS

    @property
    def provider(self):
        return self.server.provider

    def save_authorization_code(self, code: str, request) -> None:
        end_user: AuthenticatedUser = request.user
        data = request.payload.data
        settings = self.provider.settings
        with self.provider.db.transaction() as session:
            session.add(AuthorizationCode(
                code_digest=digest(code), family_id=secrets.token_hex(16),
                client_id=request.client.get_client_id(), user_id=end_user.id,
                redirect_uri=request.payload.redirect_uri or request.client.get_default_redirect_uri(),
                scope=request.scope or "", nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                resource=data.get("resource"), auth_time=end_user.auth_time, sid=end_user.sid,
                acr=acr_for(end_user.amr), amr=end_user.amr,
                expires_at=utcnow() + timedelta(seconds=settings.auth_code_ttl)))
        if request.client.row.backchannel_logout_uri and end_user.sid:
            remember_participant(self.provider.redis, self.provider.namespace, end_user.sid,
                                 request.client.get_client_id(), settings.session_ttl)

    def validate_token_request(self):
        """Client authentication and the form only (as authlib's, up to the code): the code
        is claimed and checked in ``create_token_response``, in the transaction that also
        saves the tokens. The client is read before that transaction opens (on SQLite a
        second connection would wait for its write lock)."""
        client = self.authenticate_token_endpoint_client()
        if not client.check_grant_type(self.GRANT_TYPE):
            raise UnauthorizedClientError(
                f"The client is not authorized to use 'grant_type={self.GRANT_TYPE}'")
        if self.request.form.get("code") is None:
            raise InvalidRequestError("Missing 'code' in request.")
        self.request.client = client

    def create_token_response(self):
        """Claim the code, check the request against it (redirect URI, PKCE), issue the
        tokens and save them, in one database transaction.

        Why one: a replay revokes the code's token family (RFC 9700 §4.5). With the claim
        committed on its own, a replay arriving between the claim and the save revoked
        nothing yet saved, and the winner's tokens stayed valid. Now the claim's row lock
        is held until the tokens are committed: a concurrent replay waits for it, finds
        the code used, and revokes the family with the tokens in it. A refusal after the
        claim (wrong verifier or redirect URI, an inactive user) still uses the code up,
        and a replay's revocation stands: both commit although the request fails."""
        # The signing keys are read now if due, not from inside the transaction.
        self.provider.keyring.material()
        failure: OAuth2Error | None = None
        try:
            with self.provider.db.engine.begin() as connection:
                self.request.db_connection = connection
                try:
                    self._validate_code()
                    return super().create_token_response()
                except OAuth2Error as error:
                    failure = error
        finally:
            self.request.db_connection = None
        raise failure

    def _validate_code(self) -> None:
        """The rest of authlib's ``validate_token_request``: claim the code, compare the
        redirect URI, then its ``after`` hook (PKCE's verifier check)."""
        client = self.request.client
        authorization_code = self.query_authorization_code(self.request.form["code"], client)
        if not authorization_code:
            raise InvalidGrantError("Invalid 'code' in request.")
        original_redirect_uri = authorization_code.get_redirect_uri()
        if original_redirect_uri and self.request.payload.redirect_uri != original_redirect_uri:
            raise InvalidGrantError("Invalid 'redirect_uri' in request.")
        self.request.authorization_code = authorization_code
        self.execute_hook("after_validate_token_request", None)

    def query_authorization_code(self, code: str, client) -> CodeRecord | None:
        """Claim the code (in the request's transaction). A code already used revokes its
        family (RFC 9700 §4.5).

        On PostgreSQL an unused, unexpired code of this client is claimed with its user in
        one statement; any other code is looked at to tell a replay from the rest (the
        statement changed nothing then)."""
        provider = self.provider
        conn = self.request.db_connection
        params = {"digest": digest(code), "for_client": client.get_client_id(), "now": utcnow()}
        if is_postgresql(conn):
            found = conn.execute(_CLAIM_CODE, params).first()
            if found is not None:
                record = CodeRecord(found)
                record.user = TokenUser.of_row(found)
                return record
        row = conn.execute(_FIND_CODE, params).first()
        if row is None or row.client_id != client.get_client_id():
            return None
        claimed = conn.execute(_CLAIM_CODE_BY_DIGEST, params).rowcount  # type: ignore[attr-defined]
        if not claimed:
            provider.revoke_family(conn, row.family_id, reason="code-replay")
            return None
        if row.expires_at <= params["now"]:
            return None
        record = CodeRecord(row)
        # Read on this transaction's connection: on SQLite another one would wait for it.
        user = conn.execute(_CODE_USER, {"user_id": row.user_id}).first()
        record.user = None if user is None else TokenUser.of_row(user)
        return record

    def delete_authorization_code(self, authorization_code: CodeRecord) -> None:
        """Nothing to do: the code was marked used when it was claimed."""

    def authenticate_user(self, authorization_code: CodeRecord) -> User | TokenUser | None:
        user = authorization_code.user  # read with the code, in the request's transaction
        return user if user is not None and user.status == UserStatus.ACTIVE else None


class S256CodeChallenge(CodeChallenge):
    """PKCE with S256 only (``plain`` is neither advertised nor accepted); a public client
    must use it, a confidential one may."""

    DEFAULT_CODE_CHALLENGE_METHOD = "S256"
    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": compare_s256_code_challenge}

    def validate_code_challenge(self, grant, redirect_uri):
        data = grant.request.payload.data
        challenge = data.get("code_challenge")
        if not challenge and grant.request.client.public:
            raise InvalidRequestError("Public clients must use PKCE (code_challenge, S256).")
        if challenge and data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("code_challenge_method must be S256.")
        return super().validate_code_challenge(grant, redirect_uri)


class OpenIDCode(oidc_grants.OpenIDCode):
    """ID tokens signed by the active key of the client's algorithm (ES256 by default)."""

    def __init__(self, provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request) -> bool:
        # authlib validates an authorization request twice (consent, then response), with
        # one request object: the second asks the database nothing new.
        if request.user is None:
            # The view's check before login: the nonce is left to the check made once the
            # user is known, which must happen then anyway (a code with this nonce may be
            # issued meanwhile), so a login asks the database once.
            return False
        seen = getattr(request, "portico_nonce_seen", None)
        if seen is not None and seen[0] == nonce:
            return seen[1]
        with self.provider.db.read() as session:
            exists = session.scalar(select(AuthorizationCode.code_digest).where(
                AuthorizationCode.client_id == request.payload.client_id,
                AuthorizationCode.nonce == nonce).limit(1)) is not None
        request.portico_nonce_seen = (nonce, exists)
        return exists

    def get_client_algorithm(self, client) -> str:
        return client.id_token_signed_response_alg or "ES256"

    def resolve_client_private_key(self, client):
        return self.provider.keyring.signer(self.get_client_algorithm(client))

    def get_encode_header(self, client) -> dict:
        alg = self.get_client_algorithm(client)
        return {"alg": alg, "kid": self.provider.keyring.signer(alg).kid, "typ": "JWT"}

    def get_client_claims(self, client) -> dict:
        now = int(time.time())
        ttl = self.provider.lifetime(client, "id")
        return {"iss": self.provider.settings.issuer, "aud": [client.get_client_id()],
                "azp": client.get_client_id(), "iat": now, "exp": now + ttl}

    def get_authorization_code_claims(self, authorization_code: CodeRecord) -> dict:
        claims = super().get_authorization_code_claims(authorization_code)
        if authorization_code.row.sid:
            claims["sid"] = authorization_code.row.sid
        return claims

    def generate_user_info(self, user: User, scope: str) -> dict:
        return {"sub": user.id}


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """Refresh in one database transaction: the token is claimed (rotation) with its user,
    the new access and refresh tokens are recorded, all committed together."""

    TOKEN_ENDPOINT_AUTH_METHODS = AUTH_METHODS
    INCLUDE_NEW_REFRESH_TOKEN = True

    @property
    def provider(self):
        return self.server.provider

    def validate_token_request(self):
        """Client authentication only; the token is claimed in ``create_token_response``,
        inside the transaction that also saves its successor."""
        self.request.client = self._validate_request_client()
        if self.request.form.get("refresh_token") is None:
            raise InvalidRequestError("Missing 'refresh_token' in request.")

    def create_token_response(self):
        if self._rotates_in_one_statement():
            claimed = self._rotate_in_one_statement()
            if claimed is not None:
                self.request.refresh_token = claimed
                return super().create_token_response()
        failure: OAuth2Error | None = None
        try:
            # A Core connection: nothing here needs the ORM session's bookkeeping.
            with self.provider.db.engine.begin() as connection:
                self.request.db_connection = connection
                try:
                    token = self._validate_request_token(self.request.client)
                except OAuth2Error as error:
                    # Committed although the request fails: a replay's family revocation
                    # must stand (an unknown or foreign token wrote nothing).
                    failure = error
                else:
                    # Refused after the claim (a scope or resource the token does not
                    # cover, a user no longer active): the error leaves the block, which
                    # rolls the claim back, so a bad request does not use the token up.
                    self._validate_token_scope(token)
                    self.request.refresh_token = token
                    return super().create_token_response()
        finally:
            self.request.db_connection = None
        raise failure

    def _rotates_in_one_statement(self) -> bool:
        """A plain rotation on PostgreSQL: no narrowed ``scope`` and no ``resource`` or
        ``audience`` to check, so nothing can refuse the request once the token is
        claimed and the successor stored."""
        form = self.request.form
        return (is_postgresql(self.provider.db.engine)
                and not any(form.get(name) for name in ("scope", "resource", "audience")))

    def _rotate_in_one_statement(self) -> RefreshRecord | None:
        refresh_token = self.request.form.get("refresh_token")
        if not refresh_token:
            return None
        rotated = rotate_in_one_statement(self.provider, self.request.client, refresh_token)
        if rotated is None:
            return None
        self.request.planned_successor = rotated[1]
        return rotated[0]

    def authenticate_refresh_token(self, refresh_token: str) -> RefreshRecord | None:
        """Claim the token (rotation). A used one means replay: its family is revoked.

        On PostgreSQL the claim and the user's standing are one ``UPDATE .. FROM users ..
        RETURNING`` round trip; a token it cannot claim (unknown, foreign, revoked, used)
        is then looked at to tell a replay from the rest, as on SQLite.
        """
        conn = self.request.db_connection
        client_id = self.request.client.get_client_id()
        token_digest = digest(refresh_token)
        now = utcnow()
        found = None
        if is_postgresql(conn):
            found = conn.execute(_CLAIM_UNUSED, {"digest": token_digest,
                                                 "for_client": client_id, "now": now}).first()
        if found is None:
            found = conn.execute(_FIND_BY_DIGEST, {"digest": token_digest}).first()
            if found is None or found.client_id != client_id or found.revoked_at is not None:
                return None
            claimed = conn.execute(_CLAIM_BY_ID, {"token_id": found.id, "now": now}
                                   ).rowcount  # type: ignore[attr-defined]
            if not claimed:
                self.provider.revoke_family(conn, found.family_id, reason="refresh-replay")
                return None
        if found.expires_at <= now:
            return None
        record = RefreshRecord(found)
        record.user = TokenUser.of_row(found)
        return record

    def authenticate_user(self, refresh_token: RefreshRecord) -> TokenUser | None:
        user = refresh_token.user
        return user if user is not None and user.status == UserStatus.ACTIVE else None

    def revoke_old_credential(self, refresh_token: RefreshRecord) -> None:
        """Nothing to do: the token was marked used when it was claimed."""


class ClientCredentialsGrant(grants.ClientCredentialsGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "private_key_jwt"]

    def validate_token_request(self):
        super().validate_token_request()
        scope = machine_scope(self.request.client, self.request.payload.scope)
        if scope is None:
            raise InvalidScopeError()
        self.request.scope = scope

    def create_token_response(self):
        token = self.generate_token(scope=self.request.scope, include_refresh_token=False)
        self.save_token(token)
        return 200, token, self.TOKEN_RESPONSE_HEADER


class PrivateKeyJWT(JWTBearerClientAssertion):
    """``private_key_jwt`` client authentication against the client's registered JWKS."""

    CLIENT_AUTH_METHOD = "private_key_jwt"

    def __init__(self, provider) -> None:
        super().__init__(validate_jti=True)
        self.provider = provider

    def get_audiences(self) -> list[str]:
        issuer = self.provider.settings.issuer
        return [issuer + "/token", issuer, issuer + "/"]

    def validate_jti(self, claims, jti) -> bool:
        ttl = max(int(claims.get("exp", 0) - time.time()) + self.leeway, 1)
        redis_key = key(self.provider.namespace, "client-assertion", str(claims["sub"]), str(jti))
        return bool(self.provider.redis.set(redis_key, b"1", nx=True, ex=ttl))

    def resolve_client_public_key(self, client):
        return KeySet.import_key_set(client.row.jwks or {"keys": []})
