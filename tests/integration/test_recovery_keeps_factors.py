"""Recovery does not bypass factors (issue 26): a user with an authenticator app who resets
the password by the emailed link (taken from a real SMTP server) is not signed in by the
reset, and signing in with the new password still asks for the second factor, which a
recovery code also meets."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

import pyotp
import pytest

from services.identity import acr
from services.identity.security_answers import QUESTIONS
from tests.integration.helpers.factors import pass_second_step, signed_in_with_an_app
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import ANSWERS, csrf_of, login
from tests.integration.helpers.oidc import add_client, code_params, id_token_claims

NEW = "Quiet-Lantern-77#"


@pytest.fixture
def app(signing_app):
    return signing_app


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
def user_with_an_app(app, clock):
    """A user with an authenticator app and its recovery codes; no browser signed in."""
    return signed_in_with_an_app(app, app.test_client(), clock)


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
    done = pass_second_step(browser, signed.headers["Location"],
                            pyotp.TOTP(totp_secret).at(clock().timestamp()), "/account")
    assert done.status_code == 303 and browser.get("/account").status_code == 200
    claims = id_token_claims(app, client_id, secret, browser.get(
        "/authorize", query_string=code_params(client_id)))
    assert claims["acr"] == acr.MULTI_FACTOR


def test_after_the_reset_a_recovery_code_meets_the_second_step(app, notifier,
                                                               user_with_an_app):
    _, codes = user_with_an_app
    browser = app.test_client()
    _reset_by_email(app, browser, notifier)
    signed = login(browser, password=NEW)
    assert signed.headers["Location"].startswith("/login/second-factor")
    used = pass_second_step(browser, signed.headers["Location"], codes[0], "/account")
    assert used.status_code == 200 and "Unused recovery codes left: 9." in used.text
    assert browser.get("/account").status_code == 200
