"""Recovery does not bypass factors (issue 26): a user with an authenticator app who resets
the password by the emailed link (taken from a real SMTP server) is not signed in by the
reset, and signing in with the new password still asks for the second factor, which a
recovery code also meets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pyotp
import pytest
from cryptography.fernet import Fernet
from joserfc import jwt
from joserfc.jwk import KeySet

from services.identity import acr
from services.identity.oidc import keys
from services.identity.security_answers import QUESTIONS
from tests.integration.helpers.factors import set_up_totp
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import ANSWERS, add_user, csrf_of, login
from tests.integration.helpers.oidc import add_client, code_from, code_params, exchange

NEW = "Quiet-Lantern-77#"


@pytest.fixture
def app(lifecycle_app):
    ctx = lifecycle_app.extensions["portico"]
    with ctx.db.transaction() as session:
        keys.ensure_keys(session, Fernet(ctx.settings.key_encryption_key))
    return lifecycle_app


def _emailed_reset_link(app, notifier) -> str:
    """The reset link as the user reads it: the notifier sends the email to a real SMTP
    server, and the link is taken from its text."""
    notifier.publish(*events(app, "identity.password_reset.requested"))
    notifier.consume()
    notifier.deliver_all()
    [email] = notifier.sink.messages
    text = email.get_body(("plain",)).get_content()
    url = re.search(r"https?://\S+/reset-password\?token=[\w-]+", text).group(0)
    parts = urlsplit(url)
    return f"{parts.path}?{parts.query}"


def _reset_by_email(app, browser, notifier):
    """Forgot password → the emailed link → the question and a new password, in pages."""
    page = browser.get("/forgot-password")
    asked = browser.post("/forgot-password", data={"username_or_email": "ana.garcia",
                                                   "csrf_token": csrf_of(page.text)})
    assert asked.status_code == 202
    link = _emailed_reset_link(app, notifier)
    form = browser.get(link)
    assert form.status_code == 200, form.text
    [answer] = [ANSWERS[q] for q, text in QUESTIONS.items() if str(text) in form.text]
    done = browser.post(link, data={"answer": answer, "password": NEW, "password_confirm": NEW,
                                    "csrf_token": csrf_of(form.text)})
    assert done.status_code == 200, done.text
    return done


@pytest.fixture
def user_with_an_app(app):
    """A user with an authenticator app and its recovery codes; no browser signed in."""
    add_user(app)
    setup = app.test_client()
    login(setup)
    return set_up_totp(setup)


def test_the_reset_signs_nobody_in_and_the_new_password_asks_the_app(app, notifier,
                                                                     user_with_an_app, clock):
    totp_secret, _ = user_with_an_app
    browser = app.test_client()
    _reset_by_email(app, browser, notifier)
    # The browser that reset the password is not signed in by it.
    assert browser.get("/account").status_code == 302
    client_id, secret = add_client(app)
    assert urlsplit(browser.get("/authorize", query_string=code_params(client_id))
                    .headers["Location"]).path == "/login"

    signed = login(browser, password=NEW)
    assert signed.status_code == 303
    assert signed.headers["Location"].startswith("/login/second-factor")
    assert browser.get("/account").status_code == 302  # the password alone signs in nobody
    clock.advance(seconds=60)
    page = browser.get(signed.headers["Location"])
    done = browser.post("/login/second-factor", data={
        "code": pyotp.TOTP(totp_secret).at(clock().timestamp()), "next": "/account",
        "csrf_token": csrf_of(page.text)})
    assert done.status_code == 303 and browser.get("/account").status_code == 200
    token = exchange(app, client_id, secret, code_from(browser.get(
        "/authorize", query_string=code_params(client_id)))).get_json()
    jwks = KeySet.import_key_set(app.test_client().get("/jwks").get_json())
    assert jwt.decode(token["id_token"], jwks).claims["acr"] == acr.MULTI_FACTOR


def test_after_the_reset_a_recovery_code_meets_the_second_step(app, notifier,
                                                               user_with_an_app):
    _, codes = user_with_an_app
    browser = app.test_client()
    _reset_by_email(app, browser, notifier)
    signed = login(browser, password=NEW)
    assert signed.headers["Location"].startswith("/login/second-factor")
    page = browser.get(signed.headers["Location"])
    used = browser.post("/login/second-factor", data={
        "code": codes[0], "next": "/account", "csrf_token": csrf_of(page.text)})
    assert used.status_code == 200 and "Unused recovery codes left: 9." in used.text
    assert browser.get("/account").status_code == 200
