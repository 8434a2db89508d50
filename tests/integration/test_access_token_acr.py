"""Access tokens (RFC 9068) carry the ``acr`` and ``auth_time`` of the sign-in behind them,
and a refresh keeps both: the level of a token family is the one its code was issued at,
never raised (nor lowered) by a refresh, on the general path, the one-statement rotation
(PostgreSQL) and the fast route alike."""

from __future__ import annotations

from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import update

from services.identity import acr
from services.identity.oidc.models import RefreshToken
from tests.integration import test_acr_amr
from tests.integration.helpers.factors import set_up_totp
from tests.integration.helpers.lifecycle import add_user, csrf_of, login
from tests.integration.helpers.oidc import add_client, basic, code_from, code_params, exchange

app = test_acr_amr.app  # the fixture: identity with its signing keys, on the test's clock


def _claims(app, token: str) -> dict:
    jwks = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    return dict(jwt.decode(token, jwks).claims)


def _tokens(app, browser, client_id, secret, **params) -> dict:
    answer = browser.get("/authorize?" + urlencode(code_params(client_id, **params)))
    token = exchange(app, client_id, secret, code_from(answer))
    assert token.status_code == 200, token.get_json()
    return token.get_json()


def _refresh(app, client_id, secret, refresh_token: str, **form) -> dict:
    answer = app.test_client().post("/token", data={
        "grant_type": "refresh_token", "refresh_token": refresh_token, **form},
        headers=basic(client_id, secret))
    assert answer.status_code == 200, answer.get_json()
    return answer.get_json()


def _second_factor(client, clock, totp_secret: str, next_url: str):
    page = client.get("/login/second-factor?" + urlencode({"next": next_url}))
    done = client.post("/login/second-factor", data={
        "code": pyotp.TOTP(totp_secret).at(clock().timestamp()), "next": next_url,
        "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303, done.text
    return done


def _mfa_browser(app, client, clock):
    """A new browser signed in with a password and an authenticator app's code."""
    add_user(app)
    login(client)
    totp_secret, _ = set_up_totp(client)
    clock.advance(seconds=60)
    browser = app.test_client()
    login(browser)
    _second_factor(browser, clock, totp_secret, "/account")
    return browser


def test_a_password_sign_in_gives_access_tokens_at_pwd_with_its_auth_time(app, client):
    add_user(app)
    client_id, secret = add_client(app)
    login(client)
    token = _tokens(app, client, client_id, secret)
    access, id_token = _claims(app, token["access_token"]), _claims(app, token["id_token"])
    assert access["acr"] == acr.SINGLE_FACTOR
    assert access["auth_time"] == id_token["auth_time"]


@pytest.mark.parametrize("form", [{}, {"scope": "openid offline_access"}],
                         ids=["plain rotation", "narrowed scope (general path)"])
def test_a_refresh_keeps_the_families_mfa_level_and_auth_time(app, client, clock, form):
    browser = _mfa_browser(app, client, clock)
    client_id, secret = add_client(app)
    first = _tokens(app, browser, client_id, secret)
    before = _claims(app, first["access_token"])
    assert before["acr"] == acr.MULTI_FACTOR

    again = _refresh(app, client_id, secret, first["refresh_token"], **form)
    after = _claims(app, again["access_token"])
    assert (after["acr"], after["auth_time"]) == (acr.MULTI_FACTOR, before["auth_time"])
    twice = _claims(app, _refresh(app, client_id, secret, again["refresh_token"])["access_token"])
    assert twice["acr"] == acr.MULTI_FACTOR


def test_a_refresh_never_raises_the_level(app, client, clock):
    """A step-up later in the same browser session does not lift an older family."""
    add_user(app)
    client_id, secret = add_client(app)
    login(client)
    old = _tokens(app, client, client_id, secret)
    # Set up in another browser: set up in this session, its first code proves it here.
    elsewhere = app.test_client()
    login(elsewhere)
    totp_secret, _ = set_up_totp(elsewhere)
    clock.advance(seconds=60)
    step = client.get("/authorize?" + urlencode(code_params(client_id,
                                                            acr_values=acr.MULTI_FACTOR)))
    next_url = parse_qs(urlsplit(step.headers["Location"]).query)["next"][0]
    done = _second_factor(client, clock, totp_secret, next_url)
    stepped = exchange(app, client_id, secret, code_from(client.get(done.headers["Location"])))
    assert _claims(app, stepped.get_json()["access_token"])["acr"] == acr.MULTI_FACTOR

    refreshed = _refresh(app, client_id, secret, old["refresh_token"])
    assert _claims(app, refreshed["access_token"])["acr"] == acr.SINGLE_FACTOR


def test_a_refresh_token_from_before_the_column_gives_tokens_without_acr(app, client):
    """Issued before refresh tokens kept a level: no acr (the lowest standing), not a
    guessed one."""
    add_user(app)
    client_id, secret = add_client(app)
    login(client)
    first = _tokens(app, client, client_id, secret)
    with app.extensions["portico"].db.transaction() as session:
        session.execute(update(RefreshToken).values(acr=None))
    claims = _claims(app, _refresh(app, client_id, secret, first["refresh_token"])["access_token"])
    assert "acr" not in claims and claims["auth_time"]


def test_client_credentials_tokens_carry_no_acr(app):
    client_id, secret = add_client(app, grant_types=["client_credentials"], scope="api.read",
                                   redirect_uris=[], allowed_audiences=["permissions"])
    answer = app.test_client().post("/token", data={"grant_type": "client_credentials"},
                                    headers=basic(client_id, secret))
    claims = _claims(app, answer.get_json()["access_token"])
    assert "acr" not in claims and "auth_time" not in claims
