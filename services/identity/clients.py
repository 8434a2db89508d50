"""Use cases of OIDC client registration (admin API and ``iamctl``).

Client secrets are machine-generated (256 bits) and stored as HMAC-SHA-256 under
``CLIENT_SECRET_PEPPER``: a fast keyed digest is right for high-entropy secrets (a slow
hash would cap the token endpoint), and the pepper keeps a leaked table useless.

Every change marks its session; ``watch_client_changes`` makes the identity service's
sessions bump the Redis clients version (``oidc.client_cache``) before and after such a
commit, so that every replica's cached clients go stale on the very next request.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from dataclasses import dataclass, field

import redis
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session, sessionmaker

from services.common.auth import revoke_client
from services.common.domain_errors import Conflict, NotFound
from services.common.events import Envelope, record_event, utcnow

from .models import OutboxEvent
from .oidc.client_cache import bump_version
from .oidc.models import OAuthClient, RefreshToken

log = logging.getLogger("portico.identity.clients")
CHANGED = "portico.oidc_clients_changed"
REVOKED = "portico.oidc_clients_revoked"  # the ids whose tokens a commit revokes
# Seconds a client's revocation outlives the longest token lifetime: the services accept
# a token this long after it expired (``TokenVerifier.leeway``).
REVOCATION_MARGIN = 60

PUBLIC_METHOD = "none"
AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt", "none")
GRANT_TYPES = ("authorization_code", "refresh_token", "client_credentials")


def secret_digest(pepper: str, secret: str) -> str:
    return hmac.new(pepper.encode(), secret.encode(), hashlib.sha256).hexdigest()


def secret_matches(pepper: str, digest: str | None, secret: str) -> bool:
    if not digest:
        return False
    return hmac.compare_digest(digest, secret_digest(pepper, secret))


def new_secret() -> str:
    return secrets.token_urlsafe(32)  # 256 bits


@dataclass
class ClientSpec:
    """A client's registrable fields (validated by ``schemas.ClientSchema``)."""

    name: str
    redirect_uris: list[str] = field(default_factory=list)
    post_logout_redirect_uris: list[str] = field(default_factory=list)
    grant_types: list[str] = field(default_factory=lambda: ["authorization_code"])
    scope: str = "openid"
    token_endpoint_auth_method: str = "client_secret_basic"  # noqa: S105
    first_party: bool = False
    allowed_audiences: list[str] = field(default_factory=list)
    jwks: dict | None = None
    id_token_signed_response_alg: str | None = None
    access_token_ttl: int | None = None
    id_token_ttl: int | None = None
    refresh_token_ttl: int | None = None
    backchannel_logout_uri: str | None = None
    default_acr_values: list[str] = field(default_factory=list)


def _needs_secret(method: str) -> bool:
    return method in ("client_secret_basic", "client_secret_post")


def create_client(session: Session, pepper: str, spec: ClientSpec,
                  client_id: str | None = None) -> tuple[OAuthClient, str | None]:
    """Register a client. Returns it and its secret, which is never retrievable again."""
    secret = new_secret() if _needs_secret(spec.token_endpoint_auth_method) else None
    client = OAuthClient(
        client_id=client_id or secrets.token_urlsafe(18),
        secret_digest=secret_digest(pepper, secret) if secret else None,
        public=spec.token_endpoint_auth_method == PUBLIC_METHOD,
    )
    apply_spec(client, spec)
    session.add(client)
    session.flush()
    _mark_changed(session)
    record_event(session, OutboxEvent, Envelope.new(
        "identity.client.created", "identity",
        {"client_id": client.client_id, "name": client.name, "first_party": client.first_party}))
    return client, secret


def apply_spec(client: OAuthClient, spec: ClientSpec) -> None:
    for name, value in spec.__dict__.items():
        setattr(client, name, value)
    client.public = spec.token_endpoint_auth_method == PUBLIC_METHOD
    if not _needs_secret(spec.token_endpoint_auth_method):
        client.secret_digest = None


def update_client(session: Session, pepper: str, client_id: str,
                  spec: ClientSpec) -> tuple[OAuthClient, str | None]:
    """Replace a client's settings. A switch to a secret-based method issues a secret."""
    client = get_client(session, client_id)
    _mark_changed(session)
    apply_spec(client, spec)
    secret = None
    if _needs_secret(spec.token_endpoint_auth_method) and not client.secret_digest:
        secret = new_secret()
        client.secret_digest = secret_digest(pepper, secret)
    return client, secret


def rotate_secret(session: Session, pepper: str, client_id: str) -> tuple[OAuthClient, str]:
    client = get_client(session, client_id)
    if not _needs_secret(client.token_endpoint_auth_method):
        raise Conflict("This client does not authenticate with a secret.", kind="no-secret")
    secret = new_secret()
    client.secret_digest = secret_digest(pepper, secret)
    _mark_changed(session)
    return client, secret


def delete_client(session: Session, client_id: str) -> None:
    """Delete a client and revoke everything issued to it (see :func:`_revoke_tokens`)."""
    session.delete(get_client(session, client_id))
    _revoke_tokens(session, client_id)


def disable_client(session: Session, client_id: str) -> OAuthClient:
    """Disable a client: the provider no longer knows it (no authorization, no token, no
    introspection by it) and everything issued to it is revoked. Already disabled: kept."""
    client = get_client(session, client_id)
    if client.disabled_at is None:
        client.disabled_at = utcnow()
        _revoke_tokens(session, client_id)
    return client


def enable_client(session: Session, client_id: str) -> OAuthClient:
    """Enable a disabled client again; the tokens revoked when it was disabled stay revoked."""
    client = get_client(session, client_id)
    client.disabled_at = None
    _mark_changed(session)
    return client


def _revoke_tokens(session: Session, client_id: str) -> None:
    """Revoke what was issued to ``client_id``: its refresh tokens here, its access tokens
    at every service by the Redis key written just before the commit."""
    session.execute(update(RefreshToken).where(RefreshToken.client_id == client_id,
                                               RefreshToken.revoked_at.is_(None))
                    .values(revoked_at=utcnow()))
    _mark_changed(session)
    session.info.setdefault(REVOKED, set()).add(client_id)


def _mark_changed(session: Session) -> None:
    session.info[CHANGED] = True


def watch_client_changes(sessions: sessionmaker, client: redis.Redis, namespace: str,
                         token_lifetime: int = 3600) -> None:
    """Bump the clients version around every commit of a session that changed a client,
    and, before a commit that deletes clients, revoke their tokens (``revoke_client``:
    kept ``token_lifetime`` seconds, the longest any of their tokens may live).

    Before the commit, so that a Redis that cannot be written aborts the change (the admin
    sees an error and nothing changed); after it, because a replica may have reloaded the
    old row between that first bump and the commit. A failure of the second bump is only
    logged (the change is committed); ``client_cache.MAX_AGE`` bounds its effect.
    """

    def before_commit(session: Session) -> None:
        for client_id in session.info.pop(REVOKED, ()):
            revoke_client(client, namespace, client_id, token_lifetime + REVOCATION_MARGIN)
        if session.info.get(CHANGED):
            bump_version(client, namespace)

    def after_commit(session: Session) -> None:
        if session.info.pop(CHANGED, None):
            try:
                bump_version(client, namespace)
            except redis.RedisError:
                log.error("client change committed but the clients version was not bumped")

    def after_rollback(session: Session) -> None:
        session.info.pop(CHANGED, None)
        session.info.pop(REVOKED, None)

    event.listen(sessions, "before_commit", before_commit)
    event.listen(sessions, "after_commit", after_commit)
    event.listen(sessions, "after_soft_rollback", lambda session, _previous: after_rollback(session))


def get_client(session: Session, client_id: str) -> OAuthClient:
    client = session.get(OAuthClient, client_id)
    if client is None:
        raise NotFound("No such client.", kind="client-not-found")
    return client


def list_clients(session: Session) -> list[OAuthClient]:
    return list(session.scalars(select(OAuthClient).order_by(OAuthClient.created_at)))
