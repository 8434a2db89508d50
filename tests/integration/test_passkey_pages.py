"""Passkeys on ``/account/security``: options from a CSRF-protected JSON endpoint, the
browser's answer posted by the page's form; listed with name, created, last used;
renamed and removed with CSRF; a recent sign-in needed, as for the TOTP forms. The first
factor, TOTP or passkey, brings the recovery codes; they go with the last factor."""

from __future__ import annotations

import json
import re

import pytest

from tests.integration.helpers.factors import post_security_form, set_up_totp
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import PASSWORD, add_user, audit_rows, csrf_of, login, wire
from tests.integration.helpers.passkeys import (
    ORIGIN,
    SETTINGS,
    add_passkey,
    csrf_header,
    sign_in_with_passkey,
)
from tests.support_webauthn import SoftAuthenticator

CODES = re.compile(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>")


@pytest.fixture
def app(make_app, clock):
    return wire(make_app("identity", session_cookie_secure=False, **SETTINGS), clock)


def _passkey_ids(page_text: str) -> list[str]:
    return re.findall(r'/account/security/passkeys/([0-9a-f-]{36})/remove', page_text)


def test_the_page_offers_a_passkey_with_a_strict_csp(app, client):
    add_user(app)
    login(client)
    page = client.get("/account/security")
    assert 'data-passkey="register"' in page.text and "Add a passkey" in page.text
    assert '<script src="/static/passkeys.js" defer></script>' in page.text
    assert "<script>" not in page.text  # no inline script
    csp = page.headers["Content-Security-Policy"]
    assert "script-src 'self';" in csp and "connect-src 'self';" in csp
    assert "unsafe" not in csp and "default-src 'none'" in csp
    script = client.get("/static/passkeys.js")
    assert script.status_code == 200 and "isConditionalMediationAvailable" in script.text


def test_the_first_passkey_is_listed_and_brings_the_recovery_codes_once(app, client, clock):
    user_id = add_user(app)
    login(client)
    _, added = add_passkey(client, "Work laptop")
    assert added.status_code == 200, added.text
    assert "Your passkey is added." in added.text
    assert len(CODES.findall(added.text)) == 10
    page = client.get("/account/security")
    assert "Work laptop" in page.text and "Never used" in page.text
    assert f"Added {clock().strftime('%Y-%m-%d')}" in page.text
    assert "Unused recovery codes: 10" in page.text and not CODES.findall(page.text)
    _, second = add_passkey(client, "Phone")
    assert second.status_code == 200 and not CODES.findall(second.text)
    added_events = events(app, "identity.factor.added")
    assert [e.data["factor"] for e in added_events] == ["passkey", "passkey"]
    assert all(e.subject == user_id for e in added_events)


def test_last_used_is_shown_after_a_sign_in(app, client, clock):
    add_user(app)
    login(client)
    authenticator, _ = add_passkey(client, "Laptop")
    other = app.test_client()
    assert sign_in_with_passkey(other, authenticator).status_code == 200
    assert f"Last used {clock().strftime('%Y-%m-%d')}" in client.get("/account/security").text


def test_a_passkey_is_renamed_and_removed_with_csrf(app, client):
    add_user(app)
    login(client)
    add_passkey(client, "Laptop")
    (passkey_id,) = _passkey_ids(client.get("/account/security").text)
    rename = f"/account/security/passkeys/{passkey_id}/rename"
    remove = f"/account/security/passkeys/{passkey_id}/remove"
    assert client.post(rename, data={"csrf_token": "forged", "name": "X"}).status_code == 400
    assert client.post(remove, data={"csrf_token": "forged"}).status_code == 400
    assert post_security_form(client, rename, name="  Old   laptop ").status_code == 303
    assert "Old laptop" in client.get("/account/security").text
    assert post_security_form(client, rename, name="").status_code == 400
    assert post_security_form(client, remove).status_code == 303
    assert _passkey_ids(client.get("/account/security").text) == []
    assert [e.data["factor"] for e in events(app, "identity.factor.removed")] == ["passkey"]


def test_another_users_passkey_cannot_be_renamed_or_removed(app, client):
    add_user(app)
    add_user(app, "bea.lopez")
    login(client)
    add_passkey(client, "Ana's")
    (passkey_id,) = _passkey_ids(client.get("/account/security").text)
    intruder = app.test_client()
    login(intruder, "bea.lopez")
    for action in ("rename", "remove"):
        answer = post_security_form(intruder, f"/account/security/passkeys/{passkey_id}/{action}",
                                    name="Mine")
        assert answer.status_code == 404, action
    assert "Ana&#39;s" in client.get("/account/security").text


def test_every_passkey_form_and_the_options_need_the_csrf_token(app, client):
    add_user(app)
    login(client)
    assert client.post("/account/security/passkeys/options", json={}).status_code == 403
    forged = client.post("/account/security/passkeys/options", json={},
                         headers={"X-CSRF-Token": "forged"})
    assert forged.status_code == 403
    assert forged.headers["Content-Type"] == "application/problem+json"
    assert client.post("/account/security/passkeys", data={
        "csrf_token": "forged", "name": "X", "credential": "{}"}).status_code == 400


def test_adding_a_passkey_needs_a_recent_sign_in(app, client, monkeypatch):
    add_user(app)
    login(client)
    headers = csrf_header(client, "/account/security")
    monkeypatch.setattr("services.identity.lifecycle.web.RECENT_SIGN_IN", -1)
    monkeypatch.setattr("services.identity.views.passkeys.signed_in_recently",
                        lambda auth_time: False)
    stale = client.post("/account/security/passkeys/options", headers=headers, json={})
    assert stale.status_code == 403 and stale.json["login"].startswith("/login")
    for path in ("/account/security/passkeys", "/account/security/passkeys/x/rename",
                 "/account/security/passkeys/x/remove"):
        answer = post_security_form(client, path, name="X", credential="{}")
        assert answer.status_code == 303 and answer.headers["Location"].startswith("/login")


def test_signed_out_gets_no_registration_options(app, client):
    headers = csrf_header(client, "/login")  # an anonymous login session
    answer = client.post("/account/security/passkeys/options", headers=headers, json={})
    assert answer.status_code == 401


def test_an_answer_is_accepted_once_and_only_from_the_origin(app, client):
    add_user(app)
    login(client)
    headers = csrf_header(client, "/account/security")
    options = client.post("/account/security/passkeys/options", headers=headers, json={})
    authenticator = SoftAuthenticator(ORIGIN)
    created = json.dumps(authenticator.create(options.text))
    form = {"csrf_token": headers["X-CSRF-Token"], "name": "Laptop", "credential": created}
    assert client.post("/account/security/passkeys", data=form).status_code == 200
    replay = client.post("/account/security/passkeys", data=form)
    assert replay.status_code == 400 and "could not be added" in replay.text
    _, elsewhere = add_passkey(client, "Phishing", origin="https://evil.example")
    assert elsewhere.status_code == 400
    _, garbage = client, client.post("/account/security/passkeys", data={
        **form, "credential": "not json"})
    assert garbage.status_code == 400
    _, unnamed = add_passkey(client, "")
    assert unnamed.status_code == 400 and 'id="name-error"' in unnamed.text
    assert len(_passkey_ids(client.get("/account/security").text)) == 1


def test_codes_stay_while_a_factor_remains_and_go_with_the_last(app, client):
    user_id = add_user(app)
    login(client)
    _, codes = set_up_totp(client)
    assert len(codes) == 10
    _, added = add_passkey(client, "Laptop")
    assert not CODES.findall(added.text)  # not the first factor: no new codes
    assert post_security_form(client, "/account/security/totp/remove").status_code == 303
    assert "Unused recovery codes: 10" in client.get("/account/security").text
    (passkey_id,) = _passkey_ids(client.get("/account/security").text)
    post_security_form(client, f"/account/security/passkeys/{passkey_id}/remove")
    page = client.get("/account/security")
    assert "Unused recovery codes" not in page.text
    assert post_security_form(client, "/account/security/recovery-codes").status_code == 409
    assert audit_rows(app, "passkey.removed")[-1]["subject_id"] == user_id


def test_the_last_totp_removed_while_no_passkey_still_takes_the_codes(app, client):
    add_user(app)
    login(client)
    set_up_totp(client)
    post_security_form(client, "/account/security/totp/remove")
    assert "Unused recovery codes" not in client.get("/account/security").text


def test_the_passkey_part_speaks_spanish(app, client):
    add_user(app, language="es")
    login(client)
    page = client.get("/account/security")
    assert "Añadir una llave de acceso" in page.text
    assert csrf_of(page.text)


def test_on_an_ip_address_the_pages_point_to_the_site_name(app, client):
    """make run serves identity on 127.0.0.1, where a browser refuses any ceremony (an RP
    id is never an IP address): no passkey button there, a link to localhost instead."""
    add_user(app)
    ip = "http://127.0.0.1:8001"
    assert 'data-passkey="sign-in"' not in client.get("/login", base_url=ip).text
    csrf = csrf_of(client.get("/login", base_url=ip).text)
    client.post("/login", base_url=ip, data={"username": "ana.garcia", "csrf_token": csrf,
                                             "password": PASSWORD, "next": "/"})
    page = client.get("/account/security", base_url=ip)
    assert 'data-passkey="register"' not in page.text
    assert f'href="{ORIGIN}/account/security"' in page.text


def test_a_password_alone_cannot_change_the_factors_of_a_user_who_has_one(app, client, clock):
    """Signed in with the password before the user set an app up elsewhere: that session
    may neither add a passkey nor remove the app until it passes the second step."""
    import pyotp

    from services.identity.factors import held
    from tests.integration.helpers.factors import pass_second_step

    user_id = add_user(app)
    login(client)  # password only: the user has no factor yet
    elsewhere = app.test_client()
    login(elsewhere)
    secret, _ = set_up_totp(elsewhere)
    clock.advance(seconds=60)

    refused = client.post("/account/security/passkeys/options",
                          headers=csrf_header(client, "/account/security"), json={})
    assert refused.status_code == 403 and refused.json["type"].endswith("second-factor-required")
    removal = post_security_form(client, "/account/security/totp/remove")
    assert removal.status_code == 303
    assert removal.headers["Location"].startswith("/login/second-factor")
    with app.extensions["portico"].db.read() as session:
        assert held.has_totp(session, user_id)  # the app stays

    proved = pass_second_step(client, removal.headers["Location"],
                              pyotp.TOTP(secret).at(clock().timestamp()), "/account/security")
    assert proved.status_code == 303
    _, added = add_passkey(client, "Laptop")
    assert added.status_code == 200, added.text
