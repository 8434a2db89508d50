"""Re-authentication asked by a client: ``max_age`` older than the session's sign-in, or
``prompt=login`` (``max_age=0`` is the same, OIDC Core §3.1.2.1). The user proves it again
on a login page that already names them, keeps what else they had (the second factor is
asked again), and the new ``auth_time`` is in the ID token; with ``prompt=none`` the
answer is ``login_required``."""

from __future__ import annotations

import json
import time
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest

from services.common.streams import key
from services.identity import acr
from services.identity.sessions import COOKIE
from tests.integration.helpers.factors import pass_second_step, signed_in_with_an_app
from tests.integration.helpers.lifecycle import PASSWORD, add_user, csrf_of, login
from tests.integration.helpers.oidc import add_client, code_params, id_token_claims


@pytest.fixture
def app(signing_app):
    return signing_app


@pytest.fixture
def rp(app):
    return add_client(app)


def _age_session(app, browser, seconds: int) -> int:
    """Move the browser's sign-in ``seconds`` into the past (as if it were that old);
    returns the new ``auth_time``."""
    ctx = app.extensions["portico"]
    stored = key(ctx.settings.redis_namespace, "session", browser.get_cookie(COOKIE).value)
    data = json.loads(ctx.redis.get(stored))
    data["auth_time"] -= seconds
    ctx.redis.set(stored, json.dumps(data), keepttl=True)
    return data["auth_time"]


def _claims(app, rp, answer) -> dict:
    return id_token_claims(app, *rp, answer)


def _authorize(browser, rp, **extra):
    return browser.get("/authorize?" + urlencode(code_params(rp[0], **extra)))


def _signed_in(app, browser, rp) -> dict:
    """Sign ``browser`` in (password) and get one ID token: its claims."""
    login(browser)
    return _claims(app, rp, _authorize(browser, rp))


def _to_login(answer) -> str:
    """The ``next`` of a redirect to the login page."""
    assert answer.status_code == 302, answer.text
    location = answer.headers["Location"]
    assert urlsplit(location).path == "/login", location
    return parse_qs(urlsplit(location).query)["next"][0]


def _password_again(browser, next_url: str, username="ana.garcia"):
    page = browser.get("/login", query_string={"next": next_url})
    return browser.post("/login", data={"username": username, "password": PASSWORD,
                                        "csrf_token": csrf_of(page.text), "next": next_url})


def test_an_expired_max_age_asks_the_same_user_for_the_password_again(app, client, rp):
    add_user(app)
    _signed_in(app, client, rp)
    aged = _age_session(app, client, 600)
    next_url = _to_login(_authorize(client, rp, max_age="300"))
    page = client.get("/login", query_string={"next": next_url})
    assert page.status_code == 200
    assert 'id="returning-user"' in page.text and "ana.garcia" in page.text
    assert 'name="username" value="ana.garcia"' in page.text
    done = _password_again(client, next_url)
    assert done.status_code == 303 and done.headers["Location"] == next_url
    claims = _claims(app, rp, client.get(next_url))
    assert claims["auth_time"] > aged and time.time() - claims["auth_time"] < 300


def test_within_max_age_the_session_goes_on(app, client, rp):
    add_user(app)
    first = _signed_in(app, client, rp)
    _age_session(app, client, 100)
    claims = _claims(app, rp, _authorize(client, rp, max_age="300"))
    assert claims["auth_time"] == first["auth_time"] - 100


def test_max_age_zero_is_prompt_login(app, client, rp):
    add_user(app)
    first = _signed_in(app, client, rp)
    next_url = _to_login(_authorize(client, rp, max_age="0"))
    _age_session(app, client, 5)  # the re-authentication is later than the first sign-in
    assert _password_again(client, next_url).status_code == 303
    claims = _claims(app, rp, client.get(next_url))  # no loop back to the login
    assert claims["auth_time"] >= first["auth_time"]
    assert claims["sid"] != first["sid"]  # a new session


@pytest.mark.parametrize("asked", [{"max_age": "300"}, {"max_age": "0"}, {}])
def test_prompt_none_with_an_expired_max_age_is_login_required(app, client, rp, asked):
    add_user(app)
    _signed_in(app, client, rp)
    _age_session(app, client, 600)
    answer = _authorize(client, rp, prompt="none", **asked)
    query = parse_qs(urlsplit(answer.headers["Location"]).query)
    if asked:
        assert query["error"] == ["login_required"] and query["state"] == ["st-1"]
    else:
        assert "code" in query  # without max_age an old session is good enough


@pytest.mark.parametrize("asked", [{"prompt": "login"}, {"max_age": "0"}])
def test_a_sign_in_made_elsewhere_does_not_answer_a_later_prompt_login(app, client, rp, asked):
    """The sign-in that answers ``prompt=login`` is the one this request sent the user to.
    Before, any sign-in of the last five minutes (here, straight to the account page)
    let the next authorization through without asking."""
    add_user(app)
    assert login(client).status_code == 303  # next=/account, no authorization
    next_url = _to_login(_authorize(client, rp, **asked))
    assert _password_again(client, next_url).status_code == 303
    assert "code" in parse_qs(urlsplit(client.get(next_url).headers["Location"]).query)


def test_a_user_with_a_second_factor_proves_both_again(app, client, rp, clock):
    totp_secret, _ = signed_in_with_an_app(app, client, clock)
    browser = app.test_client()
    login(browser)
    pass_second_step(browser, "/login/second-factor?next=/account",
                     pyotp.TOTP(totp_secret).at(clock().timestamp()), "/account")
    first = _claims(app, rp, _authorize(browser, rp))
    assert first["acr"] == acr.MULTI_FACTOR
    aged = _age_session(app, browser, 600)
    next_url = _to_login(_authorize(browser, rp, max_age="300"))
    step = _password_again(browser, next_url)
    assert step.headers["Location"].startswith("/login/second-factor")
    # Only the password so far: the authorization still waits for the second factor.
    assert urlsplit(browser.get(next_url).headers["Location"]).path == "/login"
    clock.advance(seconds=60)
    done = pass_second_step(browser, step.headers["Location"],
                            pyotp.TOTP(totp_secret).at(clock().timestamp()), next_url)
    assert done.status_code == 303
    claims = _claims(app, rp, browser.get(next_url))
    assert claims["acr"] == acr.MULTI_FACTOR and claims["auth_time"] > aged


def test_a_login_hint_for_someone_else_is_not_named_as_returning(app, client, rp):
    add_user(app)
    _signed_in(app, client, rp)
    next_url = _to_login(_authorize(client, rp, prompt="login", login_hint="bob.jones"))
    page = client.get("/login", query_string={"next": next_url})
    assert 'name="username" value="bob.jones"' in page.text
    assert 'id="returning-user"' not in page.text


def test_the_returning_user_page_is_in_spanish(app, client, rp):
    add_user(app, language="es")
    _signed_in(app, client, rp)
    next_url = _to_login(_authorize(client, rp, prompt="login", ui_locales="es"))
    page = client.get("/login", query_string={"next": next_url})
    assert 'id="returning-user"' in page.text and "Confirme que es usted" in page.text
