"""Passkeys used as a person's browser would, answered by the software authenticator
(tests/support_webauthn.py): added from /account/security, used at the login."""

from __future__ import annotations

import json

from tests.integration.helpers.lifecycle import csrf_of
from tests.support_webauthn import SoftAuthenticator

RP_ID = "localhost"
ORIGIN = "http://localhost:8001"
# What the pages' app needs for ceremonies answered from ORIGIN.
SETTINGS = {"webauthn_rp_id": RP_ID, "webauthn_origins": [ORIGIN]}


def csrf_header(client, path: str) -> dict[str, str]:
    """The X-CSRF-Token header of the login session, read from the page at ``path``."""
    return {"X-CSRF-Token": csrf_of(client.get(path).text)}


def add_passkey(client, name: str = "Laptop", authenticator: SoftAuthenticator | None = None,
                **answer) -> tuple[SoftAuthenticator, object]:
    """Add a passkey from the page as its script does: (the authenticator, the answer of
    the form's POST)."""
    authenticator = authenticator or SoftAuthenticator(ORIGIN)
    headers = csrf_header(client, "/account/security")
    options = client.post("/account/security/passkeys/options", headers=headers, json={})
    assert options.status_code == 200, options.text
    created = authenticator.create(options.text, **answer)
    added = client.post("/account/security/passkeys", data={
        "csrf_token": headers["X-CSRF-Token"], "name": name, "credential": json.dumps(created)})
    return authenticator, added


def passwordless_assertion(client, authenticator: SoftAuthenticator, **answer) -> tuple[
        dict[str, str], dict]:
    """(the CSRF header, the assertion) of a passwordless sign-in started on /login."""
    headers = csrf_header(client, "/login")
    options = client.post("/login/passkey/options", headers=headers, json={})
    assert options.status_code == 200, options.text
    return headers, authenticator.get(options.text, **answer)


def sign_in_with_passkey(client, authenticator: SoftAuthenticator, next_url: str = "/account",
                         **answer):
    """The answer of POST /login/passkey to a fresh assertion."""
    headers, assertion = passwordless_assertion(client, authenticator, **answer)
    return client.post("/login/passkey", headers=headers,
                       json={"credential": assertion, "next": next_url})


def second_factor_with_passkey(client, authenticator: SoftAuthenticator,
                               next_url: str = "/account", **answer):
    """After the password: the answer of POST /login/second-factor/passkey."""
    headers = csrf_header(client, f"/login/second-factor?next={next_url}")
    options = client.post("/login/second-factor/passkey/options", headers=headers, json={})
    assert options.status_code == 200, options.text
    return client.post("/login/second-factor/passkey", headers=headers, json={
        "credential": authenticator.get(options.text, **answer), "next": next_url})
