"""Bearer-token verification against a JWKS served at the HTTP boundary."""

from __future__ import annotations

import base64
import json
import time

import pytest
from flask import jsonify

from services.common.auth import current_claims, init_auth, require_auth, revoke_jti
from tests.support import CountingRedis


@pytest.fixture
def client(make_app, token_issuer):
    app = make_app("tracking")
    init_auth(app, "tracking")

    @app.get("/probe")
    @require_auth("tracking.read")
    def probe():
        return jsonify(sub=current_claims()["sub"])

    return app.test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_valid_es256_and_rs256_tokens_are_accepted(client, token_issuer):
    for alg in ("ES256", "RS256"):
        token = token_issuer.issue(sub="u-1", aud="tracking", scope="tracking.read", alg=alg)
        response = client.get("/probe", headers=bearer(token))
        assert response.status_code == 200, response.json
        assert response.json == {"sub": "u-1"}


def test_missing_token_is_401_with_a_bearer_challenge(client):
    response = client.get("/probe")
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize("case", ["wrong_signature", "wrong_aud", "expired", "alg_none",
                                  "unknown_kid", "wrong_issuer", "not_yet_valid", "garbage",
                                  "id_token_type", "logout_token_type", "no_type"])
def test_untrustworthy_tokens_are_refused(client, token_issuer, case):
    from tests.tokens import TokenIssuer

    if case == "wrong_signature":
        other = TokenIssuer()
        other.es256 = other.es256.__class__.import_key(other.es256.as_dict(private=True)
                                                       | {"kid": token_issuer.es256.kid})
        token = other.issue(aud="tracking", scope="tracking.read")
    elif case == "wrong_aud":
        token = token_issuer.issue(aud="permissions", scope="tracking.read")
    elif case == "expired":
        token = token_issuer.issue(aud="tracking", scope="tracking.read", lifetime=-120)
    elif case == "alg_none":
        def part(obj):
            return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()
        now = int(time.time())
        token = part({"alg": "none", "typ": "JWT"}) + "." + part(
            {"iss": token_issuer.issuer, "aud": "tracking", "sub": "x", "scope": "tracking.read",
             "exp": now + 60}) + "."
    elif case == "unknown_kid":
        other = TokenIssuer()
        token = other.issue(aud="tracking", scope="tracking.read")
    elif case == "wrong_issuer":
        token = token_issuer.issue(aud="tracking", scope="tracking.read", iss="https://evil.example")
    elif case == "not_yet_valid":
        token = token_issuer.issue(aud="tracking", scope="tracking.read", nbf=int(time.time()) + 3600)
    elif case.endswith("_type"):
        # Signed by the issuer's own key, for this audience: only the type says it is not
        # an access token (RFC 9068 §4), e.g. an ID token whose aud is a client's id.
        typ = {"id_token_type": "JWT", "logout_token_type": "logout+jwt", "no_type": ""}[case]
        token = token_issuer.issue(aud="tracking", scope="tracking.read", typ=typ)
    else:
        token = "not.a.jwt"
    response = client.get("/probe", headers=bearer(token))
    assert response.status_code == 401, case
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert token not in response.get_data(as_text=True)


def test_the_media_type_form_of_the_access_token_type_is_accepted(client, token_issuer):
    token = token_issuer.issue(aud="tracking", scope="tracking.read", typ="application/AT+JWT")
    assert client.get("/probe", headers=bearer(token)).status_code == 200


def test_missing_scope_is_403_insufficient_scope(client, token_issuer):
    token = token_issuer.issue(aud="tracking", scope="tracking.write")
    response = client.get("/probe", headers=bearer(token))
    assert response.status_code == 403
    assert 'error="insufficient_scope"' in response.headers["WWW-Authenticate"]


def test_a_rotated_key_is_picked_up(client, token_issuer):
    first = token_issuer.issue(aud="tracking", scope="tracking.read")
    assert client.get("/probe", headers=bearer(first)).status_code == 200
    token_issuer.rotate()
    # The cache was filled before rotation; an unknown kid forces a refresh
    # once the minimum refresh interval has passed.
    client.application.extensions["portico.auth"].jwks.min_refresh_interval = 0
    second = token_issuer.issue(aud="tracking", scope="tracking.read")
    assert client.get("/probe", headers=bearer(second)).status_code == 200


def test_a_revoked_jti_is_refused(client, token_issuer, redis_client, namespace):
    token = token_issuer.issue(aud="tracking", scope="tracking.read", jti="revoke-me")
    assert client.get("/probe", headers=bearer(token)).status_code == 200
    revoke_jti(redis_client, namespace, "revoke-me", 60)
    response = client.get("/probe", headers=bearer(token))
    assert response.status_code == 401
    assert "revoked" in response.json["detail"]


def test_a_repeated_token_skips_the_signature_check_but_not_the_deny_list(
        client, token_issuer, redis_client, namespace):
    verifier = client.application.extensions["portico.auth"]
    token = token_issuer.issue(sub="u-7", aud="tracking", scope="tracking.read", jti="seen-once")
    assert client.get("/probe", headers=bearer(token)).status_code == 200

    lookups = []
    keys_for = verifier.jwks.keys_for
    verifier.jwks.keys_for = lambda kid: lookups.append(kid) or keys_for(kid)
    response = client.get("/probe", headers=bearer(token))
    assert response.status_code == 200
    assert response.json == {"sub": "u-7"}
    assert lookups == []  # no signature check for a token already verified
    # A different token (a new digest) is verified, not served from the cache.
    other = token_issuer.issue(sub="u-7", aud="tracking", scope="tracking.read")
    assert client.get("/probe", headers=bearer(other)).status_code == 200
    assert len(lookups) == 1
    # Revocation is still read on every request: refused at once, although cached.
    revoke_jti(redis_client, namespace, "seen-once", 60)
    assert client.get("/probe", headers=bearer(token)).status_code == 401


def test_a_held_deny_list_entry_costs_no_round_trip_yet_a_revocation_is_seen_at_once(
        client, token_issuer, redis_client, namespace):
    watched = client.application.extensions["portico"].watched
    counting = watched.redis = CountingRedis(watched.redis)
    token = token_issuer.issue(sub="u-8", aud="tracking", scope="tracking.read", jti="held")
    trips = []
    for _ in range(3):
        counting.round_trips = 0
        assert client.get("/probe", headers=bearer(token)).status_code == 200
        trips.append(counting.round_trips)
    assert trips == [1, 0, 0]
    revoke_jti(redis_client, namespace, "held", 60)  # as identity does, from elsewhere
    assert client.get("/probe", headers=bearer(token)).status_code == 401


def test_cached_claims_do_not_outlive_the_token(client, token_issuer):
    verifier = client.application.extensions["portico.auth"]
    verifier.leeway = 0
    token = token_issuer.issue(aud="tracking", scope="tracking.read", lifetime=1)
    assert client.get("/probe", headers=bearer(token)).status_code == 200
    time.sleep(1.2)
    response = client.get("/probe", headers=bearer(token))
    assert response.status_code == 401
    assert "expired" in response.json["detail"]


def test_cached_claims_are_a_copy(client, token_issuer):
    app = client.application

    @app.get("/mutate")
    @require_auth("tracking.read")
    def mutate():
        current_claims()["scope"] = "everything"
        return jsonify(ok=True)

    token = token_issuer.issue(aud="tracking", scope="tracking.read")
    assert client.get("/mutate", headers=bearer(token)).status_code == 200
    assert app.extensions["portico.auth"].verify(token)["scope"] == "tracking.read"


@pytest.fixture
def deferred(make_app, token_issuer, redis_client):
    """An app with views that fold the deny-list read into their own Redis round trip."""
    from marshmallow import ValidationError

    from services.common.auth import revocation_key, settle_revocation

    app = make_app("tracking")
    init_auth(app, "tracking")
    calls = {"views": 0}

    @app.get("/folded")
    @require_auth("tracking.read", defer_revocation=True)
    def folded():
        calls["views"] += 1
        deny = revocation_key()
        assert deny is not None
        [value] = redis_client.mget([deny])
        settle_revocation(value)
        return jsonify(sub=current_claims()["sub"])

    @app.get("/forgets")
    @require_auth("tracking.read", defer_revocation=True)
    def forgets():
        calls["views"] += 1
        return jsonify(answer="computed without settling")

    @app.get("/invalid")
    @require_auth("tracking.read", defer_revocation=True)
    def invalid():
        raise ValidationError({"field": ["bad"]})

    return app.test_client(), calls


@pytest.mark.parametrize("path", ["/folded", "/forgets", "/invalid"])
def test_a_deferred_deny_list_check_still_refuses_a_revoked_token(
        deferred, token_issuer, redis_client, namespace, path):
    client, _ = deferred
    token = token_issuer.issue(aud="tracking", scope="tracking.read", jti=f"jti{path[1:]}")
    assert client.get(path, headers=bearer(token)).status_code == (422 if path == "/invalid"
                                                                   else 200)
    revoke_jti(redis_client, namespace, f"jti{path[1:]}", 60)
    response = client.get(path, headers=bearer(token))
    assert response.status_code == 401
    assert "revoked" in response.json["detail"]
    assert "computed" not in response.get_data(as_text=True)


def test_a_deferred_check_fails_closed_when_redis_is_down(deferred, token_issuer):
    import redis

    from services.common.auth import DenyList

    client, _ = deferred
    verifier = client.application.extensions["portico.auth"]
    down = DenyList(redis.Redis.from_url("redis://127.0.0.1:1/0", socket_connect_timeout=0.2),
                    verifier.deny_list.namespace)
    verifier.deny_list, verifier.is_revoked = down, down.is_revoked
    token = token_issuer.issue(aud="tracking", scope="tracking.read")
    assert client.get("/forgets", headers=bearer(token)).status_code == 401


@pytest.mark.parametrize("path", ["/probe", "/folded", "/forgets"])
def test_the_tokens_of_a_deleted_client_are_refused_on_the_next_request(
        client, deferred, token_issuer, redis_client, namespace, path):
    """Issue 24: deleting a client left its access tokens valid until they expired."""
    from services.common.auth import revoke_client

    api = client if path == "/probe" else deferred[0]
    token = token_issuer.issue(aud="tracking", scope="tracking.read", client_id="gone-rp")
    other = token_issuer.issue(aud="tracking", scope="tracking.read", client_id="other-rp")
    assert api.get(path, headers=bearer(token)).status_code == 200
    revoke_client(redis_client, namespace, "gone-rp", 60)  # as identity does on deletion
    response = api.get(path, headers=bearer(token))
    assert response.status_code == 401 and "revoked" in response.json["detail"]
    assert api.get(path, headers=bearer(other)).status_code == 200
    # A client registered again under the same id: what it is issued from now on is valid.
    later = token_issuer.issue(aud="tracking", scope="tracking.read", client_id="gone-rp",
                               iat=int(time.time()) + 2)
    assert api.get(path, headers=bearer(later)).status_code == 200


def test_the_client_revocation_is_read_in_the_same_round_trip_as_the_jti(
        client, token_issuer, redis_client, namespace):
    from services.common.auth import revoke_client

    watched = client.application.extensions["portico"].watched
    counting = watched.redis = CountingRedis(watched.redis)
    token = token_issuer.issue(aud="tracking", scope="tracking.read", client_id="rp-held")
    trips = []
    for _ in range(3):
        counting.round_trips = 0
        assert client.get("/probe", headers=bearer(token)).status_code == 200
        trips.append(counting.round_trips)
    assert trips == [1, 0, 0]
    revoke_client(redis_client, namespace, "rp-held", 60)
    assert client.get("/probe", headers=bearer(token)).status_code == 401
