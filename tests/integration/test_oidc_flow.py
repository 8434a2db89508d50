"""The OpenID Connect provider end to end: a code + PKCE flow driven by authlib's own
client, ID token verified against the published JWKS, and the rules around it."""

from __future__ import annotations

import re
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.integrations.requests_client import OAuth2Session
from authlib.jose import JsonWebKey, jwt
from cryptography.fernet import Fernet

from services.identity.oidc import keys
from tests.integration.helpers.oidc import (
    ISSUER,
    REDIRECT,
    VERIFIER,
    FlaskAdapter,
    add_client,
    add_user,
    authorize,
    basic,
    code_from,
    code_params,
    exchange,
    login,
)


def test_full_code_pkce_flow_with_authlib_client(idp):
    user_id = add_user(idp)
    client_id, secret = add_client(idp)
    http = OAuth2Session(client_id, secret, scope="openid profile email offline_access",
                         redirect_uri=REDIRECT, code_challenge_method="S256")
    http.mount(ISSUER, FlaskAdapter(idp))
    metadata = http.get(ISSUER + "/.well-known/openid-configuration", withhold_token=True).json()
    verifier = "k" * 64
    uri, state = http.create_authorization_url(metadata["authorization_endpoint"],
                                               code_verifier=verifier, nonce="nonce-42")
    browser = idp.test_client()
    split = urlsplit(uri)
    answer = authorize(browser, dict(parse_qs(split.query)))
    callback = answer.headers["Location"]
    assert parse_qs(urlsplit(callback).query)["state"] == [state]
    assert parse_qs(urlsplit(callback).query)["iss"] == [metadata["issuer"]]  # RFC 9207

    token = http.fetch_token(metadata["token_endpoint"], authorization_response=callback,
                             code_verifier=verifier)
    assert token["token_type"] == "Bearer"
    assert {"access_token", "id_token", "refresh_token", "expires_in"} <= set(token)

    jwks = JsonWebKey.import_key_set(http.get(metadata["jwks_uri"], withhold_token=True).json())
    claims = jwt.decode(token["id_token"], jwks, claims_options={
        "iss": {"essential": True, "value": ISSUER},
        "aud": {"essential": True, "value": client_id},
        "nonce": {"essential": True, "value": "nonce-42"}})
    claims.validate()
    assert claims["sub"] == user_id
    for name in ("auth_time", "acr", "amr", "at_hash", "sid", "iat", "exp"):
        assert name in claims, name
    assert claims.header["alg"] == "ES256"
    assert claims["sid"] not in (browser.get_cookie("portico_session").value,)

    access = jwt.decode(token["access_token"], jwks)
    assert access.header["typ"] == "at+jwt"
    for name in ("iss", "sub", "aud", "exp", "iat", "jti", "client_id", "scope"):
        assert name in access, name
    assert access["company_id"] == "acme"

    info = http.get(metadata["userinfo_endpoint"])
    assert info.status_code == 200
    assert info.headers["Cache-Control"] == "no-store"
    assert info.json()["sub"] == user_id
    assert info.json()["email"] == "alice@example.com"
    assert info.json()["preferred_username"] == "alice"
    posted = http.post(metadata["userinfo_endpoint"])
    assert posted.status_code == 200


def test_token_response_is_not_cacheable(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    answer = exchange(idp, client_id, secret, code)
    assert answer.status_code == 200, answer.json
    assert answer.headers["Cache-Control"] == "no-store"
    assert answer.headers["Pragma"] == "no-cache"


def test_rs256_client_gets_rs256_id_token(idp):
    add_user(idp)
    client_id, secret = add_client(idp, id_token_signed_response_alg="RS256")
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    token = exchange(idp, client_id, secret, code).json
    jwks = JsonWebKey.import_key_set(idp.test_client().get("/jwks").json)
    claims = jwt.decode(token["id_token"], jwks)
    assert claims.header["alg"] == "RS256"


def test_code_reuse_is_refused_and_revokes_its_tokens(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    first = exchange(idp, client_id, secret, code)
    assert first.status_code == 200
    again = exchange(idp, client_id, secret, code)
    assert again.status_code == 400
    assert again.json["error"] == "invalid_grant"

    api = idp.test_client()
    for kind in ("access_token", "refresh_token"):
        seen = api.post("/introspect", data={"token": first.json[kind]},
                        headers=basic(client_id, secret))
        assert seen.json == {"active": False}, kind
    refreshed = api.post("/token", data={"grant_type": "refresh_token",
                                         "refresh_token": first.json["refresh_token"]},
                         headers=basic(client_id, secret))
    assert refreshed.json["error"] == "invalid_grant"


def test_revoked_access_token_is_on_the_shared_deny_list(idp, redis_client, namespace):
    from joserfc import jwt as jose_jwt

    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    token = exchange(idp, client_id, secret, code).json
    exchange(idp, client_id, secret, code)  # replay
    jti = jose_jwt.decode(token["access_token"], idp.extensions["portico.oidc"].provider
                          .keyring.material().verify_set).claims["jti"]
    ttl = redis_client.ttl(f"{namespace}:revoked-jti:{jti}")
    assert 0 < ttl <= 600


def test_unregistered_redirect_uri_gets_an_error_page_not_a_redirect(idp):
    client_id, _ = add_client(idp)
    answer = idp.test_client().get("/authorize?" + urlencode(code_params(
        client_id, redirect_uri="https://evil.example.com/cb")))
    assert answer.status_code == 400
    assert "Location" not in answer.headers
    assert "text/html" in answer.headers["Content-Type"]


def test_unknown_client_gets_an_error_page(idp):
    answer = idp.test_client().get("/authorize?" + urlencode(code_params("nobody")))
    assert answer.status_code == 400
    assert "Location" not in answer.headers


def test_wrong_code_verifier_is_invalid_grant(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    answer = exchange(idp, client_id, secret, code, verifier="w" * 50)
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_grant"


def test_a_code_verifier_for_a_code_issued_without_pkce_is_refused(idp):
    """RFC 9700 §4.8.2 (PKCE downgrade): an attacker who strips the code_challenge from
    the authorization request must not get a code that a verifier then redeems."""
    add_user(idp)
    client_id, secret = add_client(idp)
    params = code_params(client_id)
    del params["code_challenge"], params["code_challenge_method"]
    code = code_from(authorize(idp.test_client(), params))
    answer = exchange(idp, client_id, secret, code)
    assert answer.status_code == 400
    assert answer.json["error"] == "invalid_request"
    assert "access_token" not in answer.json


def test_public_client_must_use_pkce(idp):
    add_user(idp)
    client_id, _ = add_client(idp, token_endpoint_auth_method="none")
    params = code_params(client_id)
    del params["code_challenge"], params["code_challenge_method"]
    answer = authorize(idp.test_client(), params)
    assert answer.status_code == 302
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]
    assert query["state"] == ["st-1"]


def test_public_client_full_flow_with_pkce(idp):
    add_user(idp)
    client_id, secret = add_client(idp, token_endpoint_auth_method="none")
    assert secret is None
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    answer = exchange(idp, client_id, None, code)
    assert answer.status_code == 200, answer.json


def test_plain_pkce_is_refused(idp):
    add_user(idp)
    client_id, _ = add_client(idp)
    answer = authorize(idp.test_client(), code_params(
        client_id, code_challenge=VERIFIER, code_challenge_method="plain"))
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["invalid_request"]


def test_refresh_rotates_and_replay_revokes_the_family(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    first = exchange(idp, client_id, secret, code).json
    api = idp.test_client()

    def refresh(value):
        return api.post("/token", data={"grant_type": "refresh_token", "refresh_token": value},
                        headers=basic(client_id, secret))

    second = refresh(first["refresh_token"])
    assert second.status_code == 200, second.json
    assert second.json["refresh_token"] != first["refresh_token"]
    replay = refresh(first["refresh_token"])
    assert replay.json["error"] == "invalid_grant"
    # The thief's replay killed the whole family, including the newest tokens.
    assert refresh(second.json["refresh_token"]).json["error"] == "invalid_grant"
    seen = api.post("/introspect", data={"token": second.json["access_token"]},
                    headers=basic(client_id, secret))
    assert seen.json == {"active": False}


def test_a_refused_refresh_does_not_use_the_token_up(idp):
    """A refresh refused for what it asked (a wider scope, an audience the client may not
    have) changes nothing: the same token then refreshes, and nothing was revoked. It
    used to stay claimed, so the client's next, correct refresh read as a replay and
    revoked the user's whole family."""
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    first = exchange(idp, client_id, secret, code).json
    api = idp.test_client()

    def refresh(**extra):
        return api.post("/token", data={"grant_type": "refresh_token",
                                         "refresh_token": first["refresh_token"], **extra},
                        headers=basic(client_id, secret))

    assert refresh(scope="openid phone").json["error"] == "invalid_scope"
    assert refresh(resource="permissions").json["error"] == "invalid_target"
    narrowed = refresh(scope="openid")
    assert narrowed.status_code == 200, narrowed.json
    assert narrowed.json["scope"] == "openid"
    seen = api.post("/introspect", data={"token": first["access_token"]},
                    headers=basic(client_id, secret))
    assert seen.json["active"] is True  # the family was not revoked


def test_a_refresh_cannot_widen_the_audience_beyond_the_grant(idp):
    """Issue 24: a refresh could ask for any audience the client is allowed, not only the
    one the user's grant was for."""
    add_user(idp)
    client_id, secret = add_client(idp, allowed_audiences=["permissions", "tracking"])
    code = code_from(authorize(idp.test_client(), code_params(client_id, resource="tracking")))
    first = exchange(idp, client_id, secret, code).json
    api = idp.test_client()

    def refresh(**extra):
        return api.post("/token", data={"grant_type": "refresh_token",
                                         "refresh_token": first["refresh_token"], **extra},
                        headers=basic(client_id, secret))

    def audience(access_token):
        seen = api.post("/introspect", data={"token": access_token},
                        headers=basic(client_id, secret))
        return seen.json["aud"]

    assert audience(first["access_token"]) == "tracking"
    for wider in ("permissions", ["tracking", "permissions"]):
        refused = refresh(resource=wider)
        assert refused.status_code == 400 and refused.json["error"] == "invalid_target"
    same = refresh(resource="tracking")  # the token was not used up by the refusals
    assert same.status_code == 200, same.json
    assert audience(same.json["access_token"]) == "tracking"


def test_access_tokens_carry_the_users_sign_in_time(idp):
    """RFC 9068 ``auth_time``: what a resource server needs to ask for a recent sign-in
    (RFC 9470), as identity's own email change does; a refresh keeps the sign-in's."""
    import base64
    import json
    import time

    def claims(access_token):
        payload = access_token.split(".")[1]
        return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))

    add_user(idp)
    client_id, secret = add_client(idp)
    before = int(time.time())
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    first = exchange(idp, client_id, secret, code).json
    signed_in = claims(first["access_token"])["auth_time"]
    assert before <= signed_in <= time.time()
    refreshed = idp.test_client().post("/token", data={
        "grant_type": "refresh_token", "refresh_token": first["refresh_token"]},
        headers=basic(client_id, secret)).json
    assert claims(refreshed["access_token"])["auth_time"] == signed_in


def test_a_client_authenticates_one_way_and_names_one_client(idp):
    """RFC 6749 §2.3: one authentication method per request. authlib took the first that
    worked; a request sending two, or naming two clients, is now invalid_request."""
    add_user(idp)
    client_id, secret = add_client(idp)
    other_id, _ = add_client(idp)
    api = idp.test_client()

    def code_exchange(form, headers):
        code = code_from(authorize(idp.test_client(), code_params(client_id)))
        return api.post("/token", headers=headers, data={
            "grant_type": "authorization_code", "code": code, "redirect_uri": REDIRECT,
            "code_verifier": VERIFIER, **form})

    refused = {
        "basic and post": code_exchange({"client_secret": secret}, basic(client_id, secret)),
        "two clients": code_exchange({"client_id": other_id}, basic(client_id, secret)),
        "secret and assertion": api.post("/introspect", data={
            "token": "x", "client_id": client_id, "client_secret": secret,
            "client_assertion": "e30.e30.", "client_assertion_type":
                "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}),
        "repeated token": api.post("/revoke", headers=basic(client_id, secret),
                                   data="token=a&token=b",
                                   content_type="application/x-www-form-urlencoded"),
    }
    for case, answer in refused.items():
        assert answer.status_code == 400, case
        assert answer.json["error"] == "invalid_request", case
        assert answer.headers["Cache-Control"] == "no-store", case
    # The client's own id in the form beside its Basic credentials is fine.
    same = code_exchange({"client_id": client_id}, basic(client_id, secret))
    assert same.status_code == 200, same.json


def test_an_id_token_is_not_an_access_token(idp):
    """RFC 9068: only ``typ: at+jwt`` is an access token. An ID token (signed by the same
    keys, held by every client it was issued to) introspected as inactive, userinfo
    refuses it, and revoking it revokes nothing."""
    add_user(idp)
    client_id, secret = add_client(idp)
    tokens = exchange(idp, client_id, secret,
                      code_from(authorize(idp.test_client(), code_params(client_id)))).json
    api = idp.test_client()
    seen = api.post("/introspect", data={"token": tokens["id_token"]},
                    headers=basic(client_id, secret))
    assert seen.json == {"active": False}
    info = api.get("/userinfo", headers={"Authorization": "Bearer " + tokens["id_token"]})
    assert info.status_code == 401
    assert info.json["error"] == "invalid_token"
    assert api.post("/revoke", data={"token": tokens["id_token"]},
                    headers=basic(client_id, secret)).status_code == 200
    still = api.post("/introspect", data={"token": tokens["access_token"]},
                     headers=basic(client_id, secret))
    assert still.json["active"] is True


def test_an_unknown_token_type_hint_is_a_400_not_a_401(idp):
    """401 tells a client its credentials failed; these were fine (RFC 6749 §5.2)."""
    client_id, secret = add_client(idp)
    for path in ("/revoke", "/introspect"):
        answer = idp.test_client().post(path, data={"token": "x", "token_type_hint": "id_token"},
                                        headers=basic(client_id, secret))
        assert answer.status_code == 400, path
        assert answer.json["error"] == "unsupported_token_type", path


def test_introspection_fails_closed_when_redis_is_down(idp, make_app):
    """Introspection reads the deny-list ahead of client authentication; with Redis gone
    it must answer 503, never ``active: true`` for a token it cannot check."""
    client_id, secret = add_client(idp, grant_types=["client_credentials"], scope="reports")
    issued = idp.test_client().post("/token", data={"grant_type": "client_credentials"},
                                    headers=basic(client_id, secret))
    assert issued.status_code == 200, issued.json
    settings = idp.extensions["portico"].settings
    cut_off = make_app("identity", database_url=settings.database_url,
                       redis_url="redis://127.0.0.1:1/0", rate_limits_enabled=False)
    answer = cut_off.test_client().post(
        "/introspect", data={"token": issued.json["access_token"],
                             "token_type_hint": "access_token"},
        headers=basic(client_id, secret))
    assert answer.status_code == 503
    assert "active" not in (answer.json or {})


def test_revocation_then_introspection(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    code = code_from(authorize(idp.test_client(), code_params(client_id)))
    token = exchange(idp, client_id, secret, code).json
    api = idp.test_client()
    before = api.post("/introspect", data={"token": token["access_token"]},
                      headers=basic(client_id, secret))
    assert before.json["active"] is True
    assert before.json["client_id"] == client_id
    revoked = api.post("/revoke", data={"token": token["access_token"],
                                        "token_type_hint": "access_token"},
                       headers=basic(client_id, secret))
    assert revoked.status_code == 200
    after = api.post("/introspect", data={"token": token["access_token"]},
                     headers=basic(client_id, secret))
    assert after.json == {"active": False}
    userinfo = api.get("/userinfo", headers={"Authorization": "Bearer " + token["access_token"]})
    assert userinfo.status_code == 401


def test_introspection_of_foreign_or_garbage_tokens_is_inactive(idp):
    client_id, secret = add_client(idp, grant_types=["client_credentials"], scope="api.read",
                                   redirect_uris=[], allowed_audiences=["permissions"])
    other_id, other_secret = add_client(idp, grant_types=["client_credentials"],
                                        scope="api.read", redirect_uris=[],
                                        allowed_audiences=["tracking"])
    api = idp.test_client()
    token = api.post("/token", data={"grant_type": "client_credentials"},
                     headers=basic(client_id, secret)).json["access_token"]
    assert api.post("/introspect", data={"token": "garbage"},
                    headers=basic(client_id, secret)).json == {"active": False}
    assert api.post("/introspect", data={"token": token},
                    headers=basic(other_id, other_secret)).json == {"active": False}
    unauthenticated = api.post("/introspect", data={"token": token})
    assert unauthenticated.status_code == 401


def test_prompt_none_without_session_is_login_required(idp):
    client_id, _ = add_client(idp)
    answer = idp.test_client().get("/authorize?" + urlencode(code_params(client_id,
                                                                         prompt="none")))
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == ["login_required"]
    assert query["state"] == ["st-1"]


def test_prompt_login_asks_again_even_with_a_session(idp):
    add_user(idp)
    client_id, _ = add_client(idp)
    browser = idp.test_client()
    code_from(authorize(browser, code_params(client_id)))
    again = browser.get("/authorize?" + urlencode(code_params(client_id, prompt="login")))
    assert again.status_code == 302 and again.headers["Location"].startswith("/login")
    silent = browser.get("/authorize?" + urlencode(code_params(client_id, prompt="none")))
    code_from(silent)


def test_wrong_client_secret_is_401_invalid_client(idp):
    client_id, _ = add_client(idp, grant_types=["client_credentials"], scope="api.read",
                              redirect_uris=[], allowed_audiences=["permissions"])
    answer = idp.test_client().post("/token", data={"grant_type": "client_credentials"},
                                    headers=basic(client_id, "wrong-secret"))
    assert answer.status_code == 401
    assert answer.json["error"] == "invalid_client"


def test_client_credentials_audience_and_scope(idp):
    client_id, secret = add_client(idp, grant_types=["client_credentials"],
                                   scope="api.read api.write", redirect_uris=[],
                                   allowed_audiences=["permissions", "tracking"],
                                   token_endpoint_auth_method="client_secret_post")
    api = idp.test_client()
    ok = api.post("/token", data={"grant_type": "client_credentials", "client_id": client_id,
                                  "client_secret": secret, "resource": "tracking",
                                  "scope": "api.read"})
    assert ok.status_code == 200, ok.json
    jwks = JsonWebKey.import_key_set(api.get("/jwks").json)
    claims = jwt.decode(ok.json["access_token"], jwks)
    assert claims["aud"] == "tracking"
    assert claims["scope"] == "api.read"
    assert claims["sub"] == client_id
    assert "refresh_token" not in ok.json
    refused = api.post("/token", data={"grant_type": "client_credentials",
                                       "client_id": client_id, "client_secret": secret,
                                       "audience": "notifier"})
    assert refused.json["error"] == "invalid_target"
    too_wide = api.post("/token", data={"grant_type": "client_credentials",
                                        "client_id": client_id, "client_secret": secret,
                                        "scope": "iam.admin"})
    assert too_wide.json["error"] == "invalid_scope"


def test_jwks_has_no_private_members(idp):
    body = idp.test_client().get("/jwks").json
    assert {k["alg"] for k in body["keys"]} == {"ES256", "RS256"}
    for jwk in body["keys"]:
        assert not set(jwk) & {"d", "p", "q", "dp", "dq", "qi", "k"}


def test_key_rotation_keeps_old_tokens_verifiable(make_app):
    app = make_app("identity", session_cookie_secure=False, key_activation_delay=3600)
    ctx = app.extensions["portico"]
    fernet = Fernet(ctx.settings.key_encryption_key)
    keyring = app.extensions["portico.oidc"].provider.keyring
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, fernet)
    client_id, secret = add_client(app, grant_types=["client_credentials"], scope="api.read",
                                   redirect_uris=[], allowed_audiences=["permissions"])
    api = app.test_client()

    def issue():
        return api.post("/token", data={"grant_type": "client_credentials"},
                        headers=basic(client_id, secret)).json["access_token"]

    def kid_of(token):
        return jwt.decode(token, JsonWebKey.import_key_set(api.get("/jwks").json)).header["kid"]

    old_token = issue()
    old_kid = kid_of(old_token)
    with ctx.db.transaction() as session:
        keys.rotate_keys(session, fernet, activation_delay=3600, max_token_lifetime=3600)
    keyring.invalidate()
    published = {k["kid"] for k in api.get("/jwks").json["keys"]}
    assert len(published) == 4  # the next keys are published before they sign
    assert kid_of(issue()) == old_kid  # ...and do not sign yet

    with ctx.db.transaction() as session:
        keys.rotate_keys(session, fernet, activation_delay=0, max_token_lifetime=3600)
    keyring.invalidate()
    new_token = issue()
    assert kid_of(new_token) != old_kid
    assert old_kid in {k["kid"] for k in api.get("/jwks").json["keys"]}
    assert kid_of(old_token) == old_kid  # still verifiable against the published JWKS
    seen = api.post("/introspect", data={"token": old_token}, headers=basic(client_id, secret))
    assert seen.json["active"] is True


def test_consent_is_asked_once_and_remembered(idp):
    add_user(idp)
    client_id, secret = add_client(idp, first_party=False)
    browser = idp.test_client()
    first = browser.get("/authorize?" + urlencode(code_params(client_id)))
    assert first.status_code == 302
    done = login(browser, "/authorize?" + urlencode(code_params(client_id)))
    page = browser.get(done.headers["Location"])
    assert page.status_code == 200
    html = page.get_data(as_text=True)
    assert 'name="consent" value="allow"' in html
    assert page.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in page.headers["Content-Security-Policy"]
    code_from(authorize(browser, code_params(client_id)))
    # Remembered: no consent page the second time.
    second = browser.get("/authorize?" + urlencode(code_params(client_id)))
    code_from(second)
    # prompt=consent asks again.
    asked = browser.get("/authorize?" + urlencode(code_params(client_id, prompt="consent")))
    assert asked.status_code == 200


def test_a_user_withdraws_a_consent_and_is_asked_again(idp):
    add_user(idp)
    client_id, _ = add_client(idp, first_party=False, name="Expenses")
    browser = idp.test_client()
    code_from(authorize(browser, code_params(client_id)))  # consents on the way
    page = browser.get("/account/consents")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "Expenses" in html
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
    # A forged form and a consent id that is not a number change nothing (and "²", a
    # digit to str.isdigit but not to int, was a 500).
    assert browser.post("/account/consents", data={**form, "csrf_token": "x"}).status_code == 400
    assert browser.post("/account/consents", data={**form, "consent_id": "²"}).status_code == 303
    code_from(browser.get("/authorize?" + urlencode(code_params(client_id))))  # still allowed

    withdrawn = browser.post("/account/consents", data=form)
    assert withdrawn.status_code == 303
    assert "Expenses" not in browser.get("/account/consents").get_data(as_text=True)
    asked = browser.get("/authorize?" + urlencode(code_params(client_id)))
    assert asked.status_code == 200 and 'name="consent"' in asked.get_data(as_text=True)


@pytest.mark.parametrize("target", [
    "https://evil.example/", "//evil.example/", "/\\evil.example/", "/\\/evil.example/",
    "/\t/evil.example/", "/\n/evil.example/", "evil.example",
])
def test_after_login_the_user_never_leaves_for_another_site(idp, target):
    """Browsers read "\\" as "/" and drop tabs and newlines, so "/\\evil.example" is an
    open redirect although it parses as a path."""
    add_user(idp)
    done = login(idp.test_client(), target)
    assert done.status_code == 303
    assert done.headers["Location"] == "/account/consents"


def test_after_login_a_local_path_is_followed(idp):
    add_user(idp)
    done = login(idp.test_client(), "/authorize?client_id=x&state=a%20b")
    assert done.headers["Location"] == "/authorize?client_id=x&state=a%20b"


def test_consent_denied_redirects_access_denied(idp):
    add_user(idp)
    client_id, _ = add_client(idp, first_party=False)
    answer = authorize(idp.test_client(), code_params(client_id), consent="deny")
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    assert query["error"] == ["access_denied"]
    assert query["state"] == ["st-1"]


def test_every_authorization_response_names_the_issuer(idp):
    """RFC 9207 (RFC 9700 §4.4's mix-up defence): success and errors alike, whichever
    path answers (authlib's response, the consent-grant check, the view's own errors)."""
    add_user(idp)
    first_party, _ = add_client(idp)
    third_party, _ = add_client(idp, first_party=False)
    public, _ = add_client(idp, token_endpoint_auth_method="none")
    without_pkce = code_params(public)
    del without_pkce["code_challenge"], without_pkce["code_challenge_method"]
    answers = {
        "code": authorize(idp.test_client(), code_params(first_party)),
        "access_denied": authorize(idp.test_client(), code_params(third_party), consent="deny"),
        "invalid_request": authorize(idp.test_client(), without_pkce),
        "login_required": idp.test_client().get(
            "/authorize?" + urlencode(code_params(first_party, prompt="none"))),
    }
    for expected, answer in answers.items():
        assert answer.status_code == 302, expected
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert expected in query or query.get("error") == [expected], (expected, query)
        assert query["iss"] == [ISSUER], expected
        assert query["state"] == ["st-1"], expected
    discovery = idp.test_client().get("/.well-known/openid-configuration").json
    assert discovery["authorization_response_iss_parameter_supported"] is True


@pytest.mark.parametrize(("extra", "error"), [
    ({"request": "eyJhbGciOiJub25lIn0.eyJzY29wZSI6Im9wZW5pZCJ9."}, "request_not_supported"),
    ({"request_uri": "https://rp.example.com/request.jwt"}, "request_uri_not_supported"),
    ({"registration": "{}"}, "registration_not_supported"),
    ({"response_mode": "form_post"}, "invalid_request"),
    ({"response_mode": "fragment"}, "invalid_request"),
])
def test_unsupported_request_features_are_refused_not_ignored(idp, extra, error):
    """OIDC Core §3.1.2.6: a request object, request_uri or registration, or a response
    mode other than query, is answered with its error before anyone is asked to log in."""
    client_id, _ = add_client(idp)
    answer = idp.test_client().get("/authorize?" + urlencode(code_params(client_id, **extra)))
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT)
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == [error]
    assert query["state"] == ["st-1"]
    assert "code" not in query


@pytest.mark.parametrize(("extra", "error"), [
    ({"scope": "openid wat"}, "invalid_scope"),
    ({"response_type": "token"}, "unsupported_response_type"),
    ({"code_challenge": "too-short"}, "invalid_request"),
])
def test_an_invalid_request_is_refused_before_anyone_logs_in(idp, extra, error):
    """Nobody types a password for a request that will be refused after it."""
    client_id, _ = add_client(idp)
    answer = idp.test_client().get("/authorize?" + urlencode(code_params(client_id, **extra)))
    assert answer.status_code == 302
    location = answer.headers["Location"]
    assert location.startswith(REDIRECT), location  # not the login page
    query = parse_qs(urlsplit(location).query)
    assert query["error"] == [error]
    assert query["state"] == ["st-1"]
    assert query["iss"] == [ISSUER]


def test_a_malformed_max_age_is_refused_not_ignored(idp):
    """Ignoring it skipped the fresh login the client asked for; "²" (a digit to
    str.isdigit, not to int) was a 500 once the user had a session."""
    add_user(idp)
    client_id, _ = add_client(idp)
    browser = idp.test_client()
    code_from(authorize(browser, code_params(client_id)))  # a session now
    for max_age in ("²", "-1", " 0", "soon"):
        answer = browser.get("/authorize?" + urlencode(code_params(client_id, max_age=max_age)))
        assert answer.status_code == 302, max_age
        query = parse_qs(urlsplit(answer.headers["Location"]).query)
        assert query["error"] == ["invalid_request"], max_age
        assert "code" not in query


def test_response_mode_query_is_accepted(idp):
    add_user(idp)
    client_id, _ = add_client(idp)
    code_from(authorize(idp.test_client(), code_params(client_id, response_mode="query")))


def test_duplicate_parameters_are_invalid_request(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    browser = idp.test_client()
    code_from(authorize(browser, code_params(client_id)))
    query = urlencode(code_params(client_id)) + "&scope=openid"
    answer = browser.get("/authorize?" + query)
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == ["invalid_request"]
    token = idp.test_client().post("/token", data="grant_type=client_credentials&grant_type=x",
                                   content_type="application/x-www-form-urlencoded",
                                   headers=basic(client_id, secret))
    assert token.status_code == 400
    assert token.json["error"] == "invalid_request"


def test_discovery_metadata(idp):
    answer = idp.test_client().get("/.well-known/openid-configuration")
    body = answer.json
    assert body["issuer"] == ISSUER
    assert "max-age" in answer.headers["Cache-Control"]
    for name in ("authorization_endpoint", "token_endpoint", "userinfo_endpoint", "jwks_uri",
                 "revocation_endpoint", "introspection_endpoint", "end_session_endpoint",
                 "scopes_supported", "claims_supported", "subject_types_supported",
                 "grant_types_supported"):
        assert body[name], name
    assert body["response_types_supported"] == ["code"]
    assert body["code_challenge_methods_supported"] == ["S256"]
    assert set(body["id_token_signing_alg_values_supported"]) == {"ES256", "RS256"}
    assert set(body["token_endpoint_auth_methods_supported"]) == {
        "client_secret_basic", "client_secret_post", "private_key_jwt", "none"}
    assert "none" not in body["id_token_signing_alg_values_supported"]


def test_discovery_and_jwks_are_served_below_flask_with_the_views_bytes(idp):
    from tests.support import watch_flask

    entered, flask_only = watch_flask(idp)
    for path in ("/.well-known/openid-configuration", "/jwks"):
        served, view = idp.test_client().get(path), flask_only.get(path)
        assert served.status_code == view.status_code == 200
        assert served.get_data() == view.get_data()
        for header in ("Content-Type", "Cache-Control", "Content-Length"):
            assert served.headers[header] == view.headers[header], header
    assert entered == []
    # HEAD and a query string are the views' to answer.
    assert idp.test_client().head("/jwks").status_code == 200
    assert idp.test_client().get("/jwks?x=1").json["keys"]
    assert entered == ["/jwks", "/jwks"]


def test_logout_ends_the_session_and_redirects_with_state(idp):
    add_user(idp)
    client_id, secret = add_client(idp)
    browser = idp.test_client()
    code = code_from(authorize(browser, code_params(client_id)))
    id_token = exchange(idp, client_id, secret, code).json["id_token"]
    answer = browser.get("/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://rp.example.com/bye",
        "state": "bye-1"}))
    assert answer.status_code == 303
    assert answer.headers["Location"] == "https://rp.example.com/bye?state=bye-1"
    silent = browser.get("/authorize?" + urlencode(code_params(client_id, prompt="none")))
    assert "login_required" in silent.headers["Location"]
    bad = browser.get("/logout?" + urlencode({
        "id_token_hint": id_token, "post_logout_redirect_uri": "https://evil.example.com/"}))
    assert bad.status_code == 400


def test_a_hint_naming_someone_else_asks_before_signing_the_user_out(idp):
    """Anyone can get an ID token of their own; a logout link carrying Bob's must not sign
    Alice out unasked. She is asked, and her answer is what ends the session."""
    add_user(idp, "alice")
    add_user(idp, "bob")
    client_id, secret = add_client(idp)
    bobs_browser = idp.test_client()
    path = "/authorize?" + urlencode(code_params(client_id))
    bobs_browser.get(path)
    back = login(bobs_browser, path, username="bob")
    bobs_code = code_from(bobs_browser.get(back.headers["Location"]))
    bobs_id_token = exchange(idp, client_id, secret, bobs_code).json["id_token"]
    alices_browser = idp.test_client()
    code_from(authorize(alices_browser, code_params(client_id)))
    link = "/logout?" + urlencode({"id_token_hint": bobs_id_token, "state": "bye-2",
                                   "post_logout_redirect_uri": "https://rp.example.com/bye"})

    asked = alices_browser.get(link)
    assert asked.status_code == 200
    still_in = alices_browser.get("/authorize?" + urlencode(code_params(client_id, prompt="none")))
    code_from(still_in)  # her session survived the link
    form = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                           asked.get_data(as_text=True)))
    confirmed = alices_browser.post("/logout", data=form)  # what her "Sign out" sends
    assert confirmed.status_code == 303
    assert confirmed.headers["Location"] == "https://rp.example.com/bye?state=bye-2"
    silent = alices_browser.get("/authorize?" + urlencode(code_params(client_id, prompt="none")))
    assert "login_required" in silent.headers["Location"]


def test_private_key_jwt_client_authentication(idp):
    from joserfc import jwt as jose_jwt
    from joserfc.jwk import ECKey

    key = ECKey.generate_key("P-256", parameters={"kid": "rp-1", "alg": "ES256"}, private=True)
    client_id, secret = add_client(
        idp, grant_types=["client_credentials"], scope="api.read", redirect_uris=[],
        allowed_audiences=["permissions"], token_endpoint_auth_method="private_key_jwt",
        jwks={"keys": [key.as_dict(private=False)]})
    assert secret is None
    now = int(time.time())
    assertion = jose_jwt.encode({"alg": "ES256", "kid": "rp-1"}, {
        "iss": client_id, "sub": client_id, "aud": ISSUER + "/token", "jti": "a-1",
        "iat": now, "exp": now + 60}, key)
    data = {"grant_type": "client_credentials", "client_id": client_id,
            "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
            "client_assertion": assertion}
    api = idp.test_client()
    assert api.post("/token", data=data).status_code == 200
    replay = api.post("/token", data=data)
    assert replay.json["error"] == "invalid_client"


def test_entitlements_claim_from_permissions_and_omitted_on_failure(idp, requests_mock):
    user_id = add_user(idp)
    client_id, secret = add_client(idp, scope="openid entitlements")
    url = f"http://127.0.0.1:8002/v1/users/{user_id}/entitlements"
    requests_mock.get(url, json={"entitlements": [{"key": "cards.cancel"},
                                                  {"key": "reports.view"}]})
    code = code_from(authorize(idp.test_client(), code_params(client_id,
                                                              scope="openid entitlements")))
    token = exchange(idp, client_id, secret, code).json
    assert requests_mock.last_request.headers["Authorization"].startswith("Bearer ")
    jwks = JsonWebKey.import_key_set(idp.test_client().get("/jwks").json)
    assert jwt.decode(token["access_token"], jwks)["entitlements"] == ["cards.cancel",
                                                                       "reports.view"]
    info = idp.test_client().get("/userinfo",
                                 headers={"Authorization": "Bearer " + token["access_token"]})
    assert info.json["entitlements"] == ["cards.cancel", "reports.view"]

    other = add_user(idp, username="bob")
    requests_mock.get(f"http://127.0.0.1:8002/v1/users/{other}/entitlements", status_code=503)
    provider = idp.extensions["portico.oidc"].provider
    assert provider.entitlements.for_user(other) is None
    metrics = idp.test_client().get("/metrics").get_data(as_text=True)
    assert 'portico_identity_entitlements_failures_total{reason="http"} 1.0' in metrics
