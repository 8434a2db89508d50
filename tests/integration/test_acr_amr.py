"""acr and amr in ID tokens: a password alone is urn:portico:acr:pwd with amr pwd; a
password and an authenticator app's code is urn:portico:acr:mfa with amr pwd+otp+mfa;
discovery lists the levels."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from services.identity import acr
from tests.integration.helpers.factors import pass_second_step, signed_in_with_an_app
from tests.integration.helpers.lifecycle import add_user, login
from tests.integration.helpers.oidc import add_client, code_params, id_token_claims


@pytest.fixture
def app(signing_app):
    return signing_app


def _id_token(app, browser, client_id, secret):
    answer = browser.get("/authorize?" + urlencode(code_params(client_id)))
    return id_token_claims(app, client_id, secret, answer)


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
    client_id, secret = add_client(app)
    totp_secret, _ = signed_in_with_an_app(app, client, clock)
    browser = app.test_client()
    login(browser)
    assert pass_second_step(browser, "/login/second-factor?next=/account",
                            pyotp.TOTP(totp_secret).at(clock().timestamp()),
                            "/account").status_code == 303
    claims = _id_token(app, browser, client_id, secret)
    assert (claims["acr"], claims["amr"]) == (acr.MULTI_FACTOR, ["pwd", "otp", "mfa"])


def test_levels_order_and_the_legacy_value():
    assert acr.acr_for(["pwd"]) == acr.SINGLE_FACTOR
    assert acr.acr_for(["pwd", "otp", "mfa"]) == acr.MULTI_FACTOR
    assert acr.acr_for(["hwk", "user"]) == acr.PHISHING_RESISTANT
    assert acr.level("urn:portico:acr:password") == acr.SINGLE_FACTOR and acr.level("x") is None
    assert acr.satisfies(acr.MULTI_FACTOR, acr.SINGLE_FACTOR) and not acr.satisfies(acr.SINGLE_FACTOR, acr.MULTI_FACTOR)


def _query(answer) -> dict[str, list[str]]:
    return parse_qs(urlsplit(answer.headers["Location"]).query)


def test_acr_values_mfa_steps_a_password_session_up(app, client, clock):
    totp_secret, _ = signed_in_with_an_app(app, client, clock)
    client_id, secret = add_client(app)
    asked = "/authorize?" + urlencode(code_params(client_id, acr_values=acr.MULTI_FACTOR))
    step = client.get(asked)
    assert step.status_code == 302
    assert step.headers["Location"].startswith("/login/second-factor")
    done = pass_second_step(client, step.headers["Location"],
                            pyotp.TOTP(totp_secret).at(clock().timestamp()),
                            _query(step)["next"][0])
    assert done.status_code == 303
    claims = id_token_claims(app, client_id, secret, client.get(done.headers["Location"]))
    assert claims["acr"] == acr.MULTI_FACTOR


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
    signed_in_with_an_app(app, client, clock)
    client_id, _ = add_client(app)
    answer = client.get("/authorize?" + urlencode(code_params(
        client_id, acr_values=acr.MULTI_FACTOR, prompt="none")))
    assert _query(answer)["error"] == ["interaction_required"]
