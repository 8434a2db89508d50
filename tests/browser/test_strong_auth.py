"""Strong authentication in a real browser (issue 26): a passkey added from
/account/security with Chromium's virtual authenticator (the DevTools WebAuthn domain:
CTAP2, internal transport, resident keys, user verification), then a sign-in with it and
no password; an authenticator app set up from its key and a sign-in with a code pyotp
computes. Screenshots go to docs/pages with UPDATE_PAGE_SCREENSHOTS (else to
tests/browser/artifacts/strong-auth), shown in docs/authentication.md.

The pages are opened on localhost: the suite serves identity on 127.0.0.1, and WebAuthn
accepts no IP address as a relying party, so identity's passkeys live on localhost.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from urllib.parse import urlencode

import pyotp
import pytest
from playwright.sync_api import Page, expect

from .people import Company, Person, activate_through_api
from .suite import Suite

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = (REPO / "docs" / "pages" if os.environ.get("UPDATE_PAGE_SCREENSHOTS")
               else Path(__file__).resolve().parent / "artifacts" / "strong-auth")
DOCS = REPO / "docs" / "authentication.md"
VIEWPORT = {"width": 1024, "height": 720}
NO_AUTOFILL = """
if (window.PublicKeyCredential && PublicKeyCredential.isConditionalMediationAvailable) {
  const available = PublicKeyCredential.isConditionalMediationAvailable.bind(PublicKeyCredential);
  PublicKeyCredential.isConditionalMediationAvailable = () =>
    localStorage.getItem("no-autofill") ? Promise.resolve(false) : available();
}
"""


def _shot(steps, page: Page, name: str) -> None:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    steps.shot(page, name)


def _on_localhost(suite: Suite) -> str:
    return f"http://localhost:{suite.ports['identity']}"


def _virtual_authenticator(page: Page) -> tuple[object, str]:
    """A platform authenticator that holds passkeys and verifies its user (as a laptop's
    fingerprint reader would); → the CDP session and its id."""
    # Lets a test hold back the login page's autofill request (conditional mediation).
    page.add_init_script(NO_AUTOFILL)
    cdp = page.context.new_cdp_session(page)
    cdp.send("WebAuthn.enable", {"enableUI": False})
    added = cdp.send("WebAuthn.addVirtualAuthenticator", {"options": {
        "protocol": "ctap2", "transport": "internal", "hasResidentKey": True,
        "hasUserVerification": True, "isUserVerified": True,
        "automaticPresenceSimulation": True}})
    return cdp, added["authenticatorId"]


def _sign_in_with_password(page: Page, base: str, person: Person, next_url: str) -> None:
    page.goto(f"{base}/login?" + urlencode({"next": next_url}))
    page.fill("#username", person.username)
    page.fill("#password", person.password)
    page.locator("form button[type=submit]").first.click()


def _sign_out(page: Page, base: str) -> None:
    page.goto(f"{base}/logout")
    page.locator("button[value=yes]").click()
    expect(page.locator("h1")).to_have_text("You are signed out")


def test_a_passkey_added_from_the_page_signs_in_without_a_password(suite: Suite, steps):
    base = _on_localhost(suite)
    person = activate_through_api(suite, Person("Paula", "Llave", Company.new()))
    page = steps.new_page()
    page.set_viewport_size(VIEWPORT)
    cdp, authenticator_id = _virtual_authenticator(page)

    _sign_in_with_password(page, base, person, "/account/security")
    expect(page.locator("h1")).to_have_text("Sign-in security")
    _shot(steps, page, "passkey-1-security-page")
    page.fill("#name", "Work laptop")
    page.get_by_role("button", name="Add a passkey").click()
    expect(page.locator("p.notice")).to_have_text("Your passkey is added.")
    expect(page.locator("ul.codes li")).to_have_count(10)  # the first factor's codes
    expect(page.locator("[data-testid=passkey]")).to_contain_text("Work laptop")
    _shot(steps, page, "passkey-2-added")
    stored = cdp.send("WebAuthn.getCredentials", {"authenticatorId": authenticator_id})
    assert [c["isResidentCredential"] for c in stored["credentials"]] == [True]

    # The button: with the autofill held back (else the virtual authenticator, which
    # needs no touch, answers the page's conditional request at once).
    _sign_out(page, base)
    page.evaluate("localStorage.setItem('no-autofill', '1')")
    page.goto(f"{base}/login?" + urlencode({"next": "/account/security"}))
    expect(page.locator("#username")).to_have_attribute("autocomplete", "username webauthn")
    _shot(steps, page, "passkey-3-sign-in-page")
    page.get_by_role("button", name="Sign in with a passkey").click()
    expect(page.locator("h1")).to_have_text("Sign-in security")  # signed in, no password
    expect(page.locator("[data-testid=passkey]")).to_contain_text("Last used")
    _shot(steps, page, "passkey-4-signed-in")

    # The autofill (mediation "conditional"): the login page signs in by itself once the
    # person picks the passkey in the username field, as this authenticator does at once.
    _sign_out(page, base)
    page.evaluate("localStorage.removeItem('no-autofill')")
    page.goto(f"{base}/login?" + urlencode({"next": "/account/security"}))
    expect(page.locator("h1")).to_have_text("Sign-in security")

    # After a password, the passkey is the second step.
    _sign_out(page, base)
    page.evaluate("localStorage.setItem('no-autofill', '1')")
    _sign_in_with_password(page, base, person, "/account/security")
    expect(page.locator("h1")).to_have_text("Second step")
    _shot(steps, page, "passkey-5-second-step")
    page.get_by_role("button", name="Use a passkey").click()
    expect(page.locator("h1")).to_have_text("Sign-in security")
    assert not [line for line in steps.console if "Content Security Policy" in line]


def _next_step_code(secret: str) -> str:
    """A code of a 30-second step after the one the set-up used (each step works once)."""
    time.sleep(30 - time.time() % 30 + 0.5)
    return pyotp.TOTP(secret).now()


def test_an_authenticator_app_set_up_from_its_key_signs_in_with_its_code(suite: Suite, steps):
    base = _on_localhost(suite)
    person = activate_through_api(suite, Person("Teodoro", "Codigo", Company.new()))
    page = steps.new_page()
    page.set_viewport_size(VIEWPORT)

    _sign_in_with_password(page, base, person, "/account/security")
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    _shot(steps, page, "totp-1-qr-code")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("p.notice")).to_have_text("Your authenticator app is set up.")
    _shot(steps, page, "totp-2-recovery-codes")

    _sign_out(page, base)
    _sign_in_with_password(page, base, person, "/account/security")
    expect(page.locator("h1")).to_have_text("Second step")
    expect(page.get_by_role("button", name="Use a passkey")).to_have_count(0)
    page.fill("#code", _next_step_code(secret))
    _shot(steps, page, "totp-3-second-step")
    page.get_by_role("button", name="Continue").click()
    expect(page.locator("h1")).to_have_text("Sign-in security")


def test_the_screenshots_are_in_the_docs():
    documented = DOCS.read_text()
    names = ["passkey-1-security-page", "passkey-2-added", "passkey-3-sign-in-page",
             "passkey-4-signed-in", "passkey-5-second-step", "totp-1-qr-code",
             "totp-2-recovery-codes", "totp-3-second-step"]
    assert not [n for n in names if f"pages/{n}.png" not in documented]
