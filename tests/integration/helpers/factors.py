"""Second factors set up as a person would, from /account/security."""

from __future__ import annotations

import re

import pyotp

from tests.integration.helpers.lifecycle import csrf_of


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
