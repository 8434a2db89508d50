"""Tables of the OpenID Connect provider: clients, signing keys, codes, tokens, consents."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from services.common.db import UTCDateTime
from services.common.events import utcnow
from services.identity.models import Base


class OAuthClient(Base):
    """A registered relying party. The secret is stored only as a keyed digest."""

    __tablename__ = "oauth_clients"

    client_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    secret_digest: Mapped[str | None] = mapped_column(String(64), nullable=True)
    public: Mapped[bool] = mapped_column(Boolean, default=False)
    first_party: Mapped[bool] = mapped_column(Boolean, default=False)
    redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    post_logout_redirect_uris: Mapped[list[str]] = mapped_column(JSON, default=list)
    grant_types: Mapped[list[str]] = mapped_column(JSON, default=list)
    scope: Mapped[str] = mapped_column(Text, default="openid")
    token_endpoint_auth_method: Mapped[str] = mapped_column(String(40))
    allowed_audiences: Mapped[list[str]] = mapped_column(JSON, default=list)
    jwks: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    id_token_signed_response_alg: Mapped[str | None] = mapped_column(String(10), nullable=True)
    access_token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    id_token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    refresh_token_ttl: Mapped[int | None] = mapped_column(Integer, nullable=True)
    backchannel_logout_uri: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    # OIDC Dynamic Client Registration 1.0 §2: the acr levels asked, in the client's order
    # of preference, when an authorization request names none (``oidc/acr_request.py``).
    default_acr_values: Mapped[list[str]] = mapped_column(JSON, default=list,
                                                          server_default=text("'[]'"))
    # A disabled client is unknown to the provider (no authorization, no token) and every
    # token issued to it is revoked; the admin may enable it again.
    disabled_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow,
                                                 onupdate=utcnow)


class SigningKey(Base):
    """A token-signing key. Its state follows from its times (see ``oidc.keys``)."""

    __tablename__ = "signing_keys"

    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    alg: Mapped[str] = mapped_column(String(10), index=True)
    public_jwk: Mapped[dict[str, Any]] = mapped_column(JSON)
    private_encrypted: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    activates_at: Mapped[datetime] = mapped_column(UTCDateTime())
    superseded_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    retire_after: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class AuthorizationCode(Base):
    """An issued code, looked up by the SHA-256 of its value. ``family_id`` ties it to
    every token issued from it (revoked together if the code is replayed)."""

    __tablename__ = "authorization_codes"
    # The nonce replay check (``OpenIDCode.exists_nonce``) of every authorization.
    __table_args__ = (Index("ix_authorization_codes_client_id_nonce", "client_id", "nonce"),)

    code_digest: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36))
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"))
    redirect_uri: Mapped[str] = mapped_column(String(2000))
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(String(255), nullable=True)
    code_challenge: Mapped[str | None] = mapped_column(String(128), nullable=True)
    code_challenge_method: Mapped[str | None] = mapped_column(String(10), nullable=True)
    resource: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    auth_time: Mapped[int] = mapped_column(Integer)
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    amr: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class RefreshToken(Base):
    """A refresh token (stored as SHA-256 digest). Rotated on every use; a replayed
    one revokes its whole ``family_id``."""

    __tablename__ = "refresh_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    scope: Mapped[str] = mapped_column(Text)
    resource: Mapped[str | None] = mapped_column(String(2000), nullable=True)
    auth_time: Mapped[int] = mapped_column(Integer)
    sid: Mapped[str | None] = mapped_column(String(64), nullable=True)
    # The level the family's sign-in reached (its code's ``acr``): every access token of
    # the family carries it, so a refresh never raises it. NULL for tokens issued before
    # the column existed: their access tokens carry no ``acr`` (the lowest standing).
    acr: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)


class IssuedAccessToken(Base):
    """The ``jti`` of each access token issued to a user, by family, so that a code
    replay or refresh replay can put them on the deny-list."""

    __tablename__ = "issued_access_tokens"

    jti: Mapped[str] = mapped_column(String(64), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), index=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())


class Consent(Base):
    """A user's remembered consent for a client and an exact scope set."""

    __tablename__ = "consents"
    __table_args__ = (UniqueConstraint("user_id", "client_id", "scope",
                                       name="uq_consents_user_client_scope"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    user_id: Mapped[str] = mapped_column(String(36), ForeignKey("users.id", ondelete="CASCADE"),
                                         index=True)
    client_id: Mapped[str] = mapped_column(String(64), ForeignKey("oauth_clients.client_id",
                                                                  ondelete="CASCADE"))
    scope: Mapped[str] = mapped_column(Text)
    granted_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class BackchannelLogout(Base):
    """One logout token to deliver to a client's ``backchannel_logout_uri`` (OpenID
    Connect Back-Channel Logout 1.0), tried until it is answered 200 or given up."""

    __tablename__ = "backchannel_logouts"
    # The sender's claim: pending rows by when they are due.
    __table_args__ = (Index("ix_backchannel_logouts_pending", "next_attempt_at",
                            postgresql_where=text("delivered_at IS NULL AND abandoned_at IS NULL")),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[str] = mapped_column(String(36))
    sid: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    abandoned_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
