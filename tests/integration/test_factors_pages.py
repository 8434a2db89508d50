"""``/account/security``: set up an authenticator app from its QR code, confirm it, see
the recovery codes once, make new ones, remove the app; CSRF on every form."""

from __future__ import annotations

import re

import pyotp
import pytest

from tests.integration.helpers.factors import post_security_form, set_up_totp
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import add_user, login


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


def test_signed_out_goes_to_the_login(client):
    answer = client.get("/account/security")
    assert answer.status_code == 302 and "/login" in answer.headers["Location"]


def test_enrol_with_the_qr_code_then_see_the_codes_once(app, client):
    add_user(app)
    login(client)
    post_security_form(client, "/account/security/totp")
    page = client.get("/account/security")
    assert "<svg" in page.text and "otpauth" not in page.text  # the QR, drawn inline
    assert page.headers["Content-Security-Policy"]
    wrong = post_security_form(client, "/account/security/totp/confirm", code="000000")
    assert wrong.status_code == 400 and "not correct" in wrong.text
    secret, codes = set_up_totp(client)
    assert len(codes) == 10
    shown = client.get("/account/security")
    assert secret not in shown.text and codes[0] not in shown.text
    assert "Unused recovery codes: 10" in shown.text
    assert [e.data["factor"] for e in events(app, "identity.factor.added")] == ["totp"]


def test_the_codes_download_as_text(app, client):
    add_user(app)
    login(client)
    post_security_form(client, "/account/security/totp")
    page = client.get("/account/security")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    confirmed = post_security_form(client, "/account/security/totp/confirm", code=pyotp.TOTP(secret).now())
    link = re.search(r'href="(data:text/plain[^"]+)" download="recovery-codes.txt"',
                     confirmed.text)
    assert link is not None


def test_new_codes_and_removal(app, client):
    add_user(app)
    login(client)
    _, old = set_up_totp(client)
    regenerated = post_security_form(client, "/account/security/recovery-codes")
    new = re.findall(r"<li><code>([a-z2-9-]{11})</code></li>", regenerated.text)
    assert len(new) == 10 and not set(new) & set(old)
    assert post_security_form(client, "/account/security/totp/remove").status_code == 303
    assert "Set up an authenticator app" in client.get("/account/security").text
    assert len(events(app, "identity.factor.removed")) == 1


def test_every_form_needs_the_csrf_token(app, client):
    add_user(app)
    login(client)
    for path in ("/account/security/totp", "/account/security/totp/confirm",
                 "/account/security/recovery-codes", "/account/security/totp/remove"):
        assert client.post(path, data={"csrf_token": "forged"}).status_code == 400, path


def test_the_page_speaks_spanish(app, client):
    add_user(app, language="es")
    login(client)
    assert "Configurar una aplicación de autenticación" in client.get(
        "/account/security").text


def test_changing_factors_needs_a_recent_sign_in(app, client, monkeypatch):
    add_user(app)
    login(client)
    monkeypatch.setattr("services.identity.lifecycle.web.RECENT_SIGN_IN", -1)
    for path in ("/account/security/totp", "/account/security/totp/confirm",
                 "/account/security/recovery-codes", "/account/security/totp/remove"):
        answer = post_security_form(client, path)
        assert answer.status_code == 303, path
        assert answer.headers["Location"].startswith("/login"), path
