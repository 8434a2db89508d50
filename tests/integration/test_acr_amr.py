"""acr and amr in ID tokens: a password alone is urn:portico:acr:pwd with amr pwd; a
password and an authenticator app's code is urn:portico:acr:mfa with amr pwd+otp+mfa;
discovery lists the levels."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest
from cryptography.fernet import Fernet
from joserfc import jwt
from joserfc.jwk import KeySet

from services.identity import acr
from services.identity.oidc import keys
from tests.integration.helpers.factors import set_up_totp
from tests.integration.helpers.lifecycle import add_user, csrf_of, login, wire
from tests.integration.helpers.oidc import add_client, code_from, code_params, exchange


@pytest.fixture
def app(make_app, clock):
    app = wire(make_app("identity", session_cookie_secure=False, key_activation_delay=0), clock)
    settings = app.extensions["portico"].settings
    with app.extensions["portico"].db.transaction() as session:
        keys.ensure_keys(session, Fernet(settings.key_encryption_key))
    return app


def _id_token(app, browser, client_id, secret):
    answer = browser.get("/authorize?" + urlencode(code_params(client_id)))
    code = code_from(answer)
    token = exchange(app, client_id, secret, code).get_json()
    jwks = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    return jwt.decode(token["id_token"], jwks).claims


def test_discovery_lists_the_levels(client):
    metadata = client.get("/.well-known/openid-configuration").get_json()
    assert metadata["acr_values_supported"] == [
        "urn:portico:acr:pwd", "urn:portico:acr:mfa", "urn:portico:acr:phr"]


def test_a_password_alone_is_pwd(app, client):
    add_user(app)
    client_id, secret = add_client(app)
    login(client)
    claims = _id_token(app, client, client_id, secret)
    assert (claims["acr"], claims["amr"]) == (acr.SINGLE_FACTOR, ["pwd"])


def test_a_second_factor_is_mfa(app, client, clock):
    add_user(app)
    client_id, secret = add_client(app)
    login(client)
    totp_secret, _ = set_up_totp(client)
    clock.advance(seconds=60)
    browser = app.test_client()
    login(browser)
    page = browser.get("/login/second-factor?next=/account")
    assert browser.post("/login/second-factor", data={
        "code": pyotp.TOTP(totp_secret).at(clock().timestamp()), "next": "/account",
        "csrf_token": csrf_of(page.text)}).status_code == 303
    claims = _id_token(app, browser, client_id, secret)
    assert (claims["acr"], claims["amr"]) == (acr.MULTI_FACTOR, ["pwd", "otp", "mfa"])


def test_levels_order_and_the_legacy_value():
    assert acr.acr_for(["pwd"]) == acr.SINGLE_FACTOR
    assert acr.acr_for(["pwd", "otp", "mfa"]) == acr.MULTI_FACTOR
    assert acr.acr_for(["hwk", "user"]) == acr.PHISHING_RESISTANT
    assert acr.level("urn:portico:acr:password") == acr.SINGLE_FACTOR and acr.level("x") is None
    assert acr.satisfies(acr.MULTI_FACTOR, acr.SINGLE_FACTOR) and not acr.satisfies(acr.SINGLE_FACTOR, acr.MULTI_FACTOR)


def _with_app(app, client, clock) -> str:
    """Sign ``client`` in with the password of a user who has an authenticator app (set
    up meanwhile in another browser: set up in this session, its first code would have
    proved it here)."""
    add_user(app)
    login(client)
    elsewhere = app.test_client()
    login(elsewhere)
    totp_secret, _ = set_up_totp(elsewhere)
    clock.advance(seconds=60)
    return totp_secret


def _query(answer) -> dict[str, list[str]]:
    return parse_qs(urlsplit(answer.headers["Location"]).query)


def test_acr_values_mfa_steps_a_password_session_up(app, client, clock):
    totp_secret = _with_app(app, client, clock)
    client_id, secret = add_client(app)
    asked = "/authorize?" + urlencode(code_params(client_id, acr_values=acr.MULTI_FACTOR))
    step = client.get(asked)
    assert step.status_code == 302
    assert step.headers["Location"].startswith("/login/second-factor")
    page = client.get(step.headers["Location"])
    done = client.post("/login/second-factor", data={
        "code": pyotp.TOTP(totp_secret).at(clock().timestamp()),
        "next": _query(step)["next"][0], "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303
    code = code_from(client.get(done.headers["Location"]))
    token = exchange(app, client_id, secret, code).get_json()
    jwks = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    assert jwt.decode(token["id_token"], jwks).claims["acr"] == acr.MULTI_FACTOR


def test_acr_values_out_of_reach_are_voluntary(app, client):
    add_user(app)
    client_id, secret = add_client(app)
    login(client)
    answer = client.get("/authorize?" + urlencode(code_params(
        client_id, acr_values=acr.MULTI_FACTOR)))
    assert "code" in _query(answer)


def test_an_essential_acr_out_of_reach_is_unmet(app, client):
    add_user(app)
    client_id, _ = add_client(app)
    login(client)
    claims = json.dumps({"id_token": {"acr": {"essential": True,
                                              "values": [acr.PHISHING_RESISTANT]}}})
    answer = client.get("/authorize?" + urlencode(code_params(client_id, claims=claims)))
    assert answer.status_code == 302
    assert _query(answer)["error"] == ["unmet_authentication_requirements"]
    assert _query(answer)["state"] == ["st-1"]


def test_prompt_none_cannot_step_up(app, client, clock):
    _with_app(app, client, clock)
    client_id, _ = add_client(app)
    answer = client.get("/authorize?" + urlencode(code_params(
        client_id, acr_values=acr.MULTI_FACTOR, prompt="none")))
    assert _query(answer)["error"] == ["interaction_required"]
