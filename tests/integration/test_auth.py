"""Bearer-token verification against a JWKS served at the HTTP boundary."""

from __future__ import annotations

import base64
import json
import time

import pytest
from flask import jsonify

from services.common.auth import current_claims, init_auth, require_auth, revoke_jti


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
                                  "unknown_kid", "wrong_issuer", "not_yet_valid", "garbage"])
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
    else:
        token = "not.a.jwt"
    response = client.get("/probe", headers=bearer(token))
    assert response.status_code == 401, case
    assert 'error="invalid_token"' in response.headers["WWW-Authenticate"]
    assert token not in response.get_data(as_text=True)


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
