"""Signing in with a passkey: without a password (a discoverable credential, user
verification required) and as the second factor after a password. JSON endpoints bound
to the login session, with its CSRF token; one generic refusal for every reason; the
lifecycle's rules (locked, disabled, inactive) and the login's rate limits apply."""

from __future__ import annotations

import json
import logging

import pytest

from services.identity import acr, sessions
from services.identity.models import User, UserStatus
from tests.integration.helpers.lifecycle import add_user, audit_rows, login, user_row, wire
from tests.integration.helpers.passkeys import (
    SETTINGS,
    add_passkey,
    csrf_header,
    passwordless_assertion,
    second_factor_with_passkey,
    sign_in_with_passkey,
)
from tests.support_webauthn import SoftAuthenticator

GENERIC = "The username or password is not correct, or the account cannot be used."


@pytest.fixture
def app(make_app, clock):
    return wire(make_app("identity", session_cookie_secure=False, **SETTINGS), clock)


def _amr(app, client) -> list[str] | None:
    cookie = client.get_cookie(sessions.COOKIE)
    with app.test_request_context(headers={"Cookie": f"{cookie.key}={cookie.value}"}):
        found = sessions.load_session()
        return found.amr if found and found.authenticated else None


def _enrolled(app, username: str = "ana.garcia") -> tuple[str, SoftAuthenticator]:
    """A user with a passkey added from the page, then signed out."""
    user_id = add_user(app, username)
    browser = app.test_client()
    login(browser, username)
    authenticator, added = add_passkey(browser)
    assert added.status_code == 200, added.text
    return user_id, authenticator


def _set_status(app, user_id: str, status: UserStatus) -> None:
    """Locked as the lockout locks (wrong passwords); disabled or inactive as set."""
    if status is UserStatus.LOCKED:
        guesser = app.test_client()
        for _ in range(5):
            login(guesser, password="wrong-password")
        assert user_row(app, user_id).status is UserStatus.LOCKED
        return
    with app.extensions["portico"].db.transaction() as session:
        session.get(User, user_id).status = status


def test_the_login_page_offers_a_passkey_and_autofill(app, client):
    page = client.get("/login")
    assert 'autocomplete="username webauthn"' in page.text
    assert 'data-passkey="sign-in"' in page.text and "data-conditional" in page.text
    assert "Sign in with a passkey" in page.text
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


def test_a_passkey_signs_in_without_a_password(app, client, clock):
    user_id, authenticator = _enrolled(app)
    answer = sign_in_with_passkey(client, authenticator, "/authorize?client_id=x")
    assert answer.status_code == 200, answer.text
    assert answer.json == {"redirect": "/authorize?client_id=x"}
    amr = _amr(app, client)
    assert amr == ["hwk", "user", "mfa"]
    assert acr.acr_for(amr) == acr.PHISHING_RESISTANT
    assert user_row(app, user_id).last_login_at is not None
    assert audit_rows(app, "login.succeeded")[-1]["subject_id"] == user_id
    assert client.get("/account/security").status_code == 200  # signed in


def test_a_synced_passkey_is_a_software_key(app, client):
    _, authenticator = _enrolled(app)
    authenticator.backed_up = True
    assert sign_in_with_passkey(client, authenticator).status_code == 200
    assert _amr(app, client) == ["swk", "user", "mfa"]


def test_next_is_honoured_only_when_local(app, client):
    _, authenticator = _enrolled(app)
    answer = sign_in_with_passkey(client, authenticator, "https://evil.example/")
    assert answer.json == {"redirect": "/account/consents"}


def test_without_user_verification_no_sign_in(app, client):
    user_id, authenticator = _enrolled(app)
    before = user_row(app, user_id).last_login_at
    answer = sign_in_with_passkey(client, authenticator, user_verified=False)
    assert answer.status_code == 401 and GENERIC in answer.json["detail"]
    assert answer.headers["Content-Type"] == "application/problem+json"
    assert _amr(app, client) is None
    assert user_row(app, user_id).last_login_at == before


def test_an_assertion_is_accepted_once(app, client):
    _, authenticator = _enrolled(app)
    headers, assertion = passwordless_assertion(client, authenticator)
    body = {"credential": assertion, "next": "/account"}
    assert client.post("/login/passkey", headers=headers, json=body).status_code == 200
    thief = app.test_client()
    replay = thief.post("/login/passkey", headers=csrf_header(thief, "/login"), json=body)
    assert replay.status_code == 401 and _amr(app, thief) is None
    assert "challenge" in [r["detail"]["reason"] for r in audit_rows(app, "passkey.refused")]


def test_the_challenge_of_another_session_is_refused(app, client):
    _, authenticator = _enrolled(app)
    _, assertion = passwordless_assertion(client, authenticator)
    other = app.test_client()
    answer = other.post("/login/passkey", headers=csrf_header(other, "/login"),
                        json={"credential": assertion})
    assert answer.status_code == 401


@pytest.mark.parametrize("status", [UserStatus.LOCKED, UserStatus.DISABLED, UserStatus.INACTIVE])
def test_a_user_who_may_not_sign_in_gets_the_generic_answer(app, client, status):
    user_id, authenticator = _enrolled(app)
    _set_status(app, user_id, status)
    answer = sign_in_with_passkey(client, authenticator)
    unknown = sign_in_with_passkey(app.test_client(), SoftAuthenticator(authenticator.origin))
    assert answer.status_code == unknown.status_code == 401
    assert answer.json["detail"] == unknown.json["detail"]
    assert _amr(app, client) is None


def test_a_user_idle_too_long_is_made_inactive_and_refused(app, client, clock):
    user_id, authenticator = _enrolled(app)
    clock.advance(days=400)
    assert sign_in_with_passkey(client, authenticator).status_code == 401
    assert user_row(app, user_id).status is UserStatus.INACTIVE


def test_the_csrf_token_is_required(app, client):
    _, authenticator = _enrolled(app)
    headers, assertion = passwordless_assertion(client, authenticator)
    assert client.post("/login/passkey/options", json={}).status_code == 403
    forged = client.post("/login/passkey", json={"credential": assertion},
                         headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    assert client.post("/login/passkey", headers=headers,
                       json={"credential": assertion}).status_code == 200


def test_a_malformed_body_is_a_problem_not_a_crash(app, client):
    headers = csrf_header(client, "/login")
    assert client.post("/login/passkey", headers=headers, json=[]).status_code == 400
    assert client.post("/login/passkey", headers=headers, json={}).status_code == 422
    answer = client.post("/login/passkey", headers=headers, json={"credential": {"id": 1}})
    assert answer.status_code == 401


def test_refusals_count_toward_the_login_rate_limit(make_app, clock):
    app = wire(make_app("identity", session_cookie_secure=False, login_rate_limit="2 per minute",
                        **SETTINGS), clock)
    client = app.test_client()
    headers = csrf_header(client, "/login")
    for _ in range(2):
        assert client.post("/login/passkey", headers=headers,
                           json={"credential": {}}).status_code == 401
    limited = client.post("/login/passkey", headers=headers, json={"credential": {}})
    assert limited.status_code == 429 and limited.headers["Retry-After"]
    assert client.post("/login/passkey/options", headers=headers, json={}).status_code == 429


def test_no_challenge_or_credential_reaches_the_logs(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    _, authenticator = _enrolled(app)
    headers = csrf_header(client, "/login")
    options = client.post("/login/passkey/options", headers=headers, json={}).json
    assertion = authenticator.get(json.dumps(options))
    client.post("/login/passkey", headers=headers, json={"credential": assertion})
    client.post("/login/passkey", headers=headers, json={"credential": assertion})  # refused
    logged = "\n".join(record.getMessage() + repr(record.__dict__) for record in caplog.records)
    secrets = [options["challenge"], assertion["response"]["signature"],
               assertion["response"]["clientDataJSON"], assertion["id"]]
    assert not [s for s in secrets if s in logged]
    audited = json.dumps([r["detail"] for r in audit_rows(app)])
    assert not [s for s in secrets if s in audited]


# -- a passkey as the second factor -----------------------------------------------------


def _with_password(app, client, username="ana.garcia"):
    answer = login(client, username)
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/login/second-factor")


def test_a_passkey_makes_the_password_ask_for_a_second_step(app, client):
    _, authenticator = _enrolled(app)
    _with_password(app, client)
    assert _amr(app, client) is None
    page = client.get("/login/second-factor?next=/account")
    assert "Use a passkey" in page.text
    answer = second_factor_with_passkey(client, authenticator, user_verified=False)
    assert answer.status_code == 200 and answer.json == {"redirect": "/account"}
    assert _amr(app, client) == ["pwd", "hwk", "mfa"]
    assert acr.acr_for(_amr(app, client)) == acr.PHISHING_RESISTANT
    assert audit_rows(app, "login.second_factor")[-1]["detail"]["method"] == "passkey"


def test_the_second_step_without_a_passkey_offers_only_the_code(app, client):
    from tests.integration.helpers.factors import set_up_totp

    add_user(app)
    browser = app.test_client()
    login(browser)
    set_up_totp(browser)
    _with_password(app, client)
    assert "Use a passkey" not in client.get("/login/second-factor").text
    headers = csrf_header(client, "/login/second-factor")
    assert client.post("/login/second-factor/passkey/options", headers=headers,
                       json={}).status_code == 404


def test_the_second_step_needs_the_password_first(app, client):
    _, authenticator = _enrolled(app)
    headers = csrf_header(client, "/login")
    answer = client.post("/login/second-factor/passkey/options", headers=headers, json={})
    assert answer.status_code == 401 and answer.json["login"] == "/login"


def test_another_users_passkey_is_no_second_factor(app, client):
    _, mine = _enrolled(app)
    _, theirs = _enrolled(app, "bea.lopez")
    _with_password(app, client, "bea.lopez")
    headers = csrf_header(client, "/login/second-factor")
    options = client.post("/login/second-factor/passkey/options", headers=headers, json={})
    answer = client.post("/login/second-factor/passkey", headers=headers,
                         json={"credential": mine.get(options.text)})
    assert answer.status_code == 401 and _amr(app, client) is None


def test_the_second_step_with_a_passkey_is_refused_when_locked(app, client, clock):
    user_id, authenticator = _enrolled(app)
    _with_password(app, client)
    _set_status(app, user_id, UserStatus.LOCKED)
    assert second_factor_with_passkey(client, authenticator).status_code == 401


def test_the_second_step_with_a_passkey_expires_after_five_minutes(app, client, monkeypatch):
    _, authenticator = _enrolled(app)
    _with_password(app, client)
    monkeypatch.setattr("services.identity.views.passkeys.SECOND_STEP_SECONDS", 0)
    headers = csrf_header(client, "/login")
    assert client.post("/login/second-factor/passkey/options", headers=headers,
                       json={}).status_code == 401


def test_with_passkeys_only_the_code_field_asks_for_a_recovery_code(app, client):
    _enrolled(app)
    _with_password(app, client)
    page = client.get("/login/second-factor")
    assert "Use your passkey. Without it, type one of your recovery codes." in page.text
    assert "your authenticator app shows" not in page.text


def test_the_second_steps_endpoints_need_the_csrf_token(app, client):
    _, authenticator = _enrolled(app)
    _with_password(app, client)
    headers = csrf_header(client, "/login/second-factor")
    options = client.post("/login/second-factor/passkey/options", headers=headers, json={})
    assertion = authenticator.get(options.text)
    assert client.post("/login/second-factor/passkey/options", json={}).status_code == 403
    forged = client.post("/login/second-factor/passkey", json={"credential": assertion},
                         headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403 and _amr(app, client) is None
    assert client.post("/login/second-factor/passkey", headers=headers,
                       json={"credential": assertion}).status_code == 200


# -- step-up to the phishing-resistant level ----------------------------------------------

def _with_app_and_passkey(app, clock) -> tuple[str, SoftAuthenticator]:
    """A user with an authenticator app and a passkey (set up in another browser): the
    app's secret and the passkey's authenticator."""
    from tests.integration.helpers.factors import set_up_totp

    add_user(app)
    setup = app.test_client()
    login(setup)
    secret, _ = set_up_totp(setup)
    authenticator, added = add_passkey(setup)
    assert added.status_code == 200, added.text
    clock.advance(seconds=60)
    return secret, authenticator


def test_acr_values_phr_steps_an_app_session_up_with_the_passkey_alone(app, client, clock):
    """Signed in with the app's code (mfa), a request for phr is sent to the second step
    offering the passkey alone (no code reaches that level); the passkey lifts the session
    to phr and the same authorization goes on."""
    from urllib.parse import parse_qs, urlencode, urlsplit

    import pyotp

    from tests.integration.helpers.factors import pass_second_step
    from tests.integration.helpers.oidc import add_client, code_from, code_params

    secret, authenticator = _with_app_and_passkey(app, clock)
    client_id, _ = add_client(app)
    _with_password(app, client)
    assert pass_second_step(client, "/login/second-factor?next=/account",
                            pyotp.TOTP(secret).at(clock().timestamp()),
                            "/account").status_code == 303
    assert acr.acr_for(_amr(app, client)) == acr.MULTI_FACTOR
    asked = "/authorize?" + urlencode(code_params(client_id, acr_values=acr.PHISHING_RESISTANT))
    step = client.get(asked)
    assert step.status_code == 302
    location = step.headers["Location"]
    query = parse_qs(urlsplit(location).query)
    assert location.startswith("/login/second-factor") and query["method"] == ["passkey"]
    page = client.get(location)
    assert 'id="passkey-only"' in page.text and 'name="code"' not in page.text
    answer = second_factor_with_passkey(client, authenticator, next_url=query["next"][0])
    assert answer.status_code == 200, answer.text
    assert acr.acr_for(_amr(app, client)) == acr.PHISHING_RESISTANT
    code_from(client.get(answer.json["redirect"]))


def test_an_essential_phr_without_a_passkey_is_unmet(app, client, clock):
    """A user with only an app cannot reach phr: an essential request says so."""
    import json as json_module
    from urllib.parse import parse_qs, urlencode, urlsplit

    from tests.integration.helpers.factors import set_up_totp
    from tests.integration.helpers.oidc import add_client, code_params

    add_user(app)
    setup = app.test_client()
    login(setup)
    set_up_totp(setup)
    client_id, _ = add_client(app)
    claims = json_module.dumps({"id_token": {"acr": {"essential": True,
                                                     "values": [acr.PHISHING_RESISTANT]}}})
    answer = setup.get("/authorize?" + urlencode(code_params(client_id, claims=claims)))
    assert parse_qs(urlsplit(answer.headers["Location"]).query)["error"] == [
        "unmet_authentication_requirements"]
