"""Second factors set up as a person would, from /account/security."""

from __future__ import annotations

import re

import pyotp

from tests.integration.helpers.lifecycle import add_user, csrf_of, login


def post_security_form(client, path: str, **data: str):
    """POST one of /account/security's forms with the page's CSRF token."""
    page = client.get("/account/security")
    return client.post(path, data={"csrf_token": csrf_of(page.text), **data})


def set_up_totp(client) -> tuple[str, list[str]]:
    """Enrol and confirm an authenticator app from the page: its secret and the codes."""
    assert post_security_form(client, "/account/security/totp").status_code == 303
    page = client.get("/account/security")
    secret = re.search(r'id="totp-secret">([A-Z2-7]+)<', page.text).group(1)
    confirmed = post_security_form(client, "/account/security/totp/confirm",
                                   code=pyotp.TOTP(secret).now())
    assert confirmed.status_code == 200, confirmed.text
    return secret, re.findall(r"<li><code>([a-z2-9]{5}-[a-z2-9]{5})</code></li>", confirmed.text)


def signed_in_with_an_app(app, browser, clock) -> tuple[str, list[str]]:
    """``browser`` signed in with the password alone of a new user (``ana.garcia``) who
    has an authenticator app, set up meanwhile in another browser (set up in ``browser``,
    its first code would have proved it there); ``clock`` is past the confirming code's
    step. The app's secret and the recovery codes."""
    add_user(app)
    login(browser)
    elsewhere = app.test_client()
    login(elsewhere)
    made = set_up_totp(elsewhere)
    clock.advance(seconds=60)
    return made


def pass_second_step(browser, location: str, code: str, next_url: str):
    """Answer the second-step page at ``location`` with ``code``, going on to ``next_url``."""
    page = browser.get(location)
    return browser.post("/login/second-factor", data={
        "code": code, "next": next_url, "csrf_token": csrf_of(page.text)})
