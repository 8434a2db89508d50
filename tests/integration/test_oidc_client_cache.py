"""Clients are cached per process and validated against a Redis version key: a change
made through one replica is enforced by every other replica on its very next request.
Two identity apps share one database and one Redis namespace, as two pods would."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event

from services.identity import clients
from services.identity.oidc import keys
from services.identity.schemas import ClientSchema
from tests.integration.helpers.oidc import (
    add_client,
    add_user,
    authorize,
    basic,
    code_from,
    code_params,
    exchange,
)
from tests.support import CountingRedis, statements

ADMIN = {"scope": "iam.admin", "aud": "identity"}


@pytest.fixture
def replicas(make_app):
    first = make_app("identity", session_cookie_secure=False, key_activation_delay=0)
    ctx = first.extensions["portico"]
    second = make_app("identity", session_cookie_secure=False, key_activation_delay=0,
                      database_url=ctx.settings.database_url)
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))
    return first, second


def machine_client(app, **fields):
    spec = {"grant_types": ["client_credentials"], "scope": "api.read api.write",
            "redirect_uris": [], "allowed_audiences": ["tracking"]}
    spec.update(fields)
    return add_client(app, **spec)


def token(app, client_id, secret, **form):
    return app.test_client().post("/token", data={"grant_type": "client_credentials", **form},
                                  headers=basic(client_id, secret))


def test_rotated_secret_stops_working_on_every_replica_at_once(replicas, token_issuer):
    first, second = replicas
    client_id, old = machine_client(first)
    assert token(first, client_id, old).status_code == 200
    assert token(second, client_id, old).status_code == 200  # cached by the second replica
    auth = {"Authorization": "Bearer " + token_issuer.issue(**ADMIN)}
    rotated = first.test_client().post(f"/admin/v1/clients/{client_id}/secret", headers=auth)
    assert rotated.status_code == 200
    new = rotated.json["client_secret"]

    refused = token(second, client_id, old)
    assert refused.status_code == 401 and refused.json["error"] == "invalid_client"
    assert token(second, client_id, new).status_code == 200
    assert token(first, client_id, old).status_code == 401
    assert token(first, client_id, new).status_code == 200


def test_deleted_client_stops_working_on_every_replica_at_once(replicas, token_issuer):
    first, second = replicas
    client_id, secret = machine_client(first)
    issued = token(second, client_id, secret)
    assert issued.status_code == 200
    auth = {"Authorization": "Bearer " + token_issuer.issue(**ADMIN)}
    assert first.test_client().delete(f"/admin/v1/clients/{client_id}",
                                      headers=auth).status_code == 204

    assert token(second, client_id, secret).json["error"] == "invalid_client"
    introspect = second.test_client().post(
        "/introspect", data={"token": issued.json["access_token"]},
        headers=basic(client_id, secret))
    assert introspect.status_code == 401


def test_updated_client_is_enforced_by_the_other_replica_at_once(replicas):
    first, second = replicas
    client_id, secret = machine_client(first)
    assert token(second, client_id, secret, scope="api.write").status_code == 200
    ctx = first.extensions["portico"]
    with ctx.db.transaction() as session:
        clients.update_client(session, ctx.settings.client_secret_pepper, client_id,
                              ClientSchema().load({
                                  "name": "Narrowed", "grant_types": ["client_credentials"],
                                  "scope": "api.read", "allowed_audiences": ["tracking"]}))
    assert token(second, client_id, secret, scope="api.write").json["error"] == "invalid_scope"
    assert token(second, client_id, secret, scope="api.read").status_code == 200


def test_a_client_created_after_an_unknown_lookup_works_at_once(replicas):
    first, second = replicas
    assert token(second, "late-client", "x" * 43).json["error"] == "invalid_client"
    ctx = first.extensions["portico"]
    with ctx.db.transaction() as session:
        _, secret = clients.create_client(
            session, ctx.settings.client_secret_pepper,
            ClientSchema().load({"name": "Late", "grant_types": ["client_credentials"],
                                 "scope": "api.read", "redirect_uris": []}),
            client_id="late-client")
    assert token(second, "late-client", secret).status_code == 200


def test_a_rolled_back_change_does_not_invalidate(replicas, redis_client, namespace):
    first, _ = replicas
    client_id, _ = machine_client(first)
    from services.identity.oidc.client_cache import version_key

    before = redis_client.get(version_key(namespace))
    ctx = first.extensions["portico"]
    with pytest.raises(RuntimeError), ctx.db.transaction() as session:
        clients.delete_client(session, client_id)
        raise RuntimeError("abandon")
    assert redis_client.get(version_key(namespace)) == before


def test_a_cached_client_costs_no_query(replicas):
    _, second = replicas
    client_id, secret = machine_client(second)
    assert token(second, client_id, secret).status_code == 200
    seen = statements(second)
    for _ in range(3):
        assert token(second, client_id, secret).status_code == 200
    assert seen == []


def _count_redis(app) -> CountingRedis:
    """Count the Redis commands of ``app``'s token and introspection paths from now on."""
    provider = app.extensions["portico.oidc"].provider
    counting = CountingRedis(provider.redis)
    provider.redis = provider.clients.redis = provider.watched.redis = counting
    return counting


def test_warm_token_and_introspection_requests_make_no_redis_round_trip(replicas):
    """The clients version and the token's deny-list entry are held by the watched keys;
    a change through the other replica is still seen on the very next request."""
    first, second = replicas
    client_id, secret = machine_client(second)
    access = token(second, client_id, secret).json["access_token"]
    counting = _count_redis(second)
    introspect = {"token": access, "token_type_hint": "access_token"}
    trips = []
    for _ in range(3):
        counting.round_trips = 0
        assert token(second, client_id, secret).status_code == 200
        answer = second.test_client().post("/introspect", data=introspect,
                                           headers=basic(client_id, secret))
        assert answer.json["active"] is True
        trips.append(counting.round_trips)
    assert trips[1:] == [0, 0]
    assert first.test_client().post("/revoke", data={"token": access},
                                    headers=basic(client_id, secret)).status_code == 200
    answer = second.test_client().post("/introspect", data=introspect,
                                       headers=basic(client_id, secret))
    assert answer.json == {"active": False}
def _signed_in(app, **client_fields):
    """A user signed in to a new client: ``(client_id, secret, token response)``."""
    add_user(app)
    client_id, secret = add_client(app, **client_fields)
    code = code_from(authorize(app.test_client(), code_params(client_id)))
    return client_id, secret, exchange(app, client_id, secret, code).json


def test_refresh_is_one_transaction_and_keeps_rotation(replicas):
    first, _ = replicas
    client_id, secret, issued = _signed_in(first)
    engine = first.extensions["portico"].db.engine
    commits: list[int] = []
    event.listen(engine, "commit", lambda conn: commits.append(1))
    ran = statements(first)
    api = first.test_client()
    rotated = api.post("/token", data={"grant_type": "refresh_token",
                                       "refresh_token": issued["refresh_token"]},
                       headers=basic(client_id, secret))
    assert rotated.status_code == 200, rotated.json
    if engine.dialect.name == "postgresql":
        # Claim and both inserts are one autocommitted statement on the driver connection
        # (services.common.db.DriverStatement), below SQLAlchemy's execution events.
        assert ran == [] and commits == [], ran
    else:
        assert len(commits) == 1
    assert rotated.json["refresh_token"] != issued["refresh_token"]
    assert _family_rows(first, issued["refresh_token"]) == 2  # the successor was stored
    # The replay's family revocation is committed although that request fails.
    replay = api.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": issued["refresh_token"]},
                      headers=basic(client_id, secret))
    assert replay.status_code == 400 and replay.json["error"] == "invalid_grant"
    newest = api.post("/token", data={"grant_type": "refresh_token",
                                      "refresh_token": rotated.json["refresh_token"]},
                      headers=basic(client_id, secret))
    assert newest.json["error"] == "invalid_grant"


def _family_rows(app, refresh_token: str) -> int:
    """How many refresh tokens the family of ``refresh_token`` holds."""
    from sqlalchemy import func, select

    from services.identity.oidc.models import RefreshToken
    from services.identity.oidc.records import digest

    with app.extensions["portico"].db.read() as session:
        family = session.scalar(select(RefreshToken.family_id).where(
            RefreshToken.token_digest == digest(refresh_token)))
        return session.scalar(select(func.count()).select_from(RefreshToken).where(
            RefreshToken.family_id == family))


def test_refresh_narrowing_the_scope_rotates_with_the_narrower_scope(replicas):
    first, _ = replicas
    client_id, secret, issued = _signed_in(first)
    api = first.test_client()
    narrowed = api.post("/token", data={"grant_type": "refresh_token", "scope": "openid email",
                                        "refresh_token": issued["refresh_token"]},
                        headers=basic(client_id, secret))
    assert narrowed.status_code == 200, narrowed.json
    assert narrowed.json["scope"] == "openid email"
    again = api.post("/token", data={"grant_type": "refresh_token",
                                     "refresh_token": narrowed.json["refresh_token"]},
                     headers=basic(client_id, secret))
    assert again.status_code == 200, again.json
    assert again.json["scope"] == "openid email"  # the successor kept the narrower scope
    wider = api.post("/token", data={"grant_type": "refresh_token", "scope": "openid profile",
                                     "refresh_token": again.json["refresh_token"]},
                     headers=basic(client_id, secret))
    assert wider.json["error"] == "invalid_scope"


def test_refresh_naming_a_foreign_resource_stores_no_successor(replicas):
    """Refused after the claim: the one-statement rotation, which stores the successor
    with the claim, must not be the path such a request takes."""
    first, _ = replicas
    client_id, secret, issued = _signed_in(first, allowed_audiences=["permissions"])
    before = _family_rows(first, issued["refresh_token"])
    refused = first.test_client().post("/token", data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"],
        "resource": "https://elsewhere.example.com"}, headers=basic(client_id, secret))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    assert _family_rows(first, issued["refresh_token"]) == before


def test_expired_refresh_token_is_refused_and_stays_unrotated(replicas):
    from datetime import timedelta

    from sqlalchemy import update

    from services.common.events import utcnow
    from services.identity.oidc.models import RefreshToken

    first, _ = replicas
    client_id, secret, issued = _signed_in(first)
    with first.extensions["portico"].db.transaction() as session:
        session.execute(update(RefreshToken).values(expires_at=utcnow() - timedelta(seconds=1)))
    before = _family_rows(first, issued["refresh_token"])
    refused = first.test_client().post("/token", data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=basic(client_id, secret))
    assert refused.status_code == 400 and refused.json["error"] == "invalid_grant"
    assert "access_token" not in refused.json
    assert _family_rows(first, issued["refresh_token"]) == before


def test_refresh_for_a_disabled_user_is_refused(replicas):
    from services.identity.models import User, UserStatus

    first, _ = replicas
    user_id = add_user(first)
    client_id, secret = add_client(first)
    code = code_from(authorize(first.test_client(), code_params(client_id)))
    issued = exchange(first, client_id, secret, code).json
    with first.extensions["portico"].db.transaction() as session:
        session.get(User, user_id).status = UserStatus.DISABLED
    refused = first.test_client().post("/token", data={
        "grant_type": "refresh_token", "refresh_token": issued["refresh_token"]},
        headers=basic(client_id, secret))
    assert refused.status_code == 400 and "access_token" not in refused.json


def test_rendered_jwks_matches_the_published_keys(replicas):
    import json

    from services.identity.oidc.server import AuthorizationServer

    first, _ = replicas
    server: AuthorizationServer = first.extensions["portico.oidc"]
    rendered = json.loads(server.provider.keyring.jwks_json())
    assert rendered == first.test_client().get("/jwks").json
    assert all("d" not in key for key in rendered["keys"])
