"""A client's default_acr_values (OIDC Dynamic Client Registration 1.0 §2): registered and
validated through the admin API, asked (voluntarily) by an authorization request of the
client that names no level itself, and seen by every replica as soon as it changes."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from services.identity import acr
from tests.integration.helpers.factors import pass_second_step, signed_in_with_an_app
from tests.integration.helpers.lifecycle import add_user, login, signing_identity
from tests.integration.helpers.oidc import REDIRECT, add_client, code_params, id_token_claims

ADMIN = {"scope": "iam.admin", "aud": "identity"}
CLIENT = {"name": "Payments", "redirect_uris": [REDIRECT],
          "grant_types": ["authorization_code"], "scope": "openid profile email offline_access",
          "first_party": True}


@pytest.fixture
def app(signing_app):
    return signing_app


def _admin(token_issuer) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_issuer.issue(**ADMIN)}


def test_the_admin_api_registers_and_validates_the_levels(app, client, token_issuer):
    auth = _admin(token_issuer)
    created = client.post("/admin/v1/clients", headers=auth, json={
        **CLIENT, "default_acr_values": [acr.MULTI_FACTOR, acr.SINGLE_FACTOR]})
    assert created.status_code == 201, created.json
    assert created.json["default_acr_values"] == [acr.MULTI_FACTOR, acr.SINGLE_FACTOR]
    client_id = created.json["client_id"]
    assert client.get(f"/admin/v1/clients/{client_id}", headers=auth).json[
        "default_acr_values"] == [acr.MULTI_FACTOR, acr.SINGLE_FACTOR]

    unknown = client.post("/admin/v1/clients", headers=auth, json={
        **CLIENT, "default_acr_values": [acr.MULTI_FACTOR, "urn:example:gold", 3]})
    assert unknown.status_code == 422
    assert unknown.headers["Content-Type"] == "application/problem+json"
    assert set(unknown.json["errors"]) == {"default_acr_values.1", "default_acr_values.2"}
    not_a_list = client.post("/admin/v1/clients", headers=auth, json={
        **CLIENT, "default_acr_values": acr.MULTI_FACTOR})
    assert not_a_list.status_code == 422 and "default_acr_values" in not_a_list.json["errors"]

    # A replacement without the field clears it, as for every other optional field.
    cleared = client.put(f"/admin/v1/clients/{client_id}", headers=auth, json=CLIENT)
    assert cleared.status_code == 200 and cleared.json["default_acr_values"] == []
    spec = client.get("/openapi.json").get_json()
    assert "default_acr_values" in spec["components"]["schemas"]["Client"]["properties"]


def test_a_request_naming_no_level_asks_the_default_and_steps_up(app, client, clock):
    totp_secret, _ = signed_in_with_an_app(app, client, clock)
    client_id, secret = add_client(app, default_acr_values=[acr.MULTI_FACTOR])
    step = client.get("/authorize?" + urlencode(code_params(client_id)))
    assert step.status_code == 302
    assert step.headers["Location"].startswith("/login/second-factor")
    done = pass_second_step(client, step.headers["Location"],
                            pyotp.TOTP(totp_secret).at(clock().timestamp()),
                            parse_qs(urlsplit(step.headers["Location"]).query)["next"][0])
    assert done.status_code == 303
    claims = id_token_claims(app, client_id, secret, client.get(done.headers["Location"]))
    assert claims["acr"] == acr.MULTI_FACTOR


def test_the_request_s_own_levels_win_over_the_default(app, client, clock):
    signed_in_with_an_app(app, client, clock)
    client_id, secret = add_client(app, default_acr_values=[acr.MULTI_FACTOR])
    answer = client.get("/authorize?" + urlencode(code_params(
        client_id, acr_values=acr.SINGLE_FACTOR)))
    assert id_token_claims(app, client_id, secret, answer)["acr"] == acr.SINGLE_FACTOR


@pytest.mark.parametrize("extra", [{}, {"claims": json.dumps(
    {"id_token": {"acr": {"essential": True}}})}])
def test_the_default_is_voluntary(app, client, extra):
    """Out of reach (no factor; no passkey), the authorization goes on and the ID token
    says what was reached: a default is never essential, even under an essential ``acr``
    claim that names no level."""
    add_user(app)
    login(client)
    client_id, secret = add_client(app, default_acr_values=[acr.PHISHING_RESISTANT])
    answer = client.get("/authorize?" + urlencode(code_params(client_id, **extra)))
    assert id_token_claims(app, client_id, secret, answer)["acr"] == acr.SINGLE_FACTOR


def test_with_prompt_none_the_default_cannot_step_up(app, client, clock):
    signed_in_with_an_app(app, client, clock)
    client_id, _ = add_client(app, default_acr_values=[acr.MULTI_FACTOR])
    answer = client.get("/authorize?" + urlencode(code_params(client_id, prompt="none")))
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == [
        "interaction_required"]


def test_a_changed_default_applies_on_every_replica_at_once(make_app, clock, token_issuer):
    """Clients are cached per process (oidc/client_cache.py): a replica that served the
    client before the change asks the new default on its very next request."""
    first = signing_identity(make_app, clock)
    second = signing_identity(make_app, clock,
                              database_url=first.extensions["portico"].settings.database_url)
    browser = second.test_client()
    signed_in_with_an_app(second, browser, clock)
    created = first.test_client().post("/admin/v1/clients", headers=_admin(token_issuer),
                                       json=CLIENT)
    client_id = created.json["client_id"]
    params = urlencode(code_params(client_id))
    assert "code" in parse_qs(urlsplit(browser.get("/authorize?" + params)
                                       .headers["Location"]).query)  # cached now
    changed = first.test_client().put(f"/admin/v1/clients/{client_id}",
                                      headers=_admin(token_issuer),
                                      json={**CLIENT, "default_acr_values": [acr.MULTI_FACTOR]})
    assert changed.status_code == 200, changed.json
    step = browser.get("/authorize?" + urlencode(code_params(client_id)))
    assert step.headers["Location"].startswith("/login/second-factor")
