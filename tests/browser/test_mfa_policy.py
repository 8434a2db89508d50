"""Issue 26 in a real browser: a company whose MFA policy is ``required`` (set by the help
desk through identity's API) cannot skip enrolment. Its user signs in to the portal,
lands on the "add a passkey" page without a "Not now", cannot reach the relying party
however they try, sets up an authenticator app (a code from pyotp) and then continues to
the portal, signed in.

``UPDATE_PAGE_SCREENSHOTS=1`` writes the page's screenshot to docs/pages/ (as
test_pages.py does for the other pages), else to tests/browser/artifacts/pages/.
"""

from __future__ import annotations

import os
from pathlib import Path

import pyotp
import pytest
import requests
from playwright.sync_api import Page, expect

from .people import Company, Person, activate_through_api
from .suite import Suite
from .test_journey import _bearer, helpdesk  # noqa: F401 - the help desk's client fixture

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = (REPO / "docs" / "pages" if os.environ.get("UPDATE_PAGE_SCREENSHOTS")
               else Path(__file__).resolve().parent / "artifacts" / "pages")


def require_a_factor(suite: Suite, helpdesk: dict[str, str], person: Person) -> str:  # noqa: F811
    """Help desk: the company of ``person`` now requires a second factor, no grace."""
    token = suite.client_token(helpdesk, "iam.helpdesk", "identity")
    lookup = requests.get(f"{suite.identity}/admin/v1/users", params={"q": person.username},
                          headers=_bearer(token), timeout=10)
    assert lookup.status_code == 200, lookup.text
    company_id = next(u["company_id"] for u in lookup.json()["items"]
                      if u["id"] == person.user_id)
    answer = requests.put(f"{suite.identity}/admin/v1/companies/{company_id}/mfa-policy",
                          json={"policy": "required", "grace_days": 0,
                                "why": "card program security review, ticket 881"},
                          headers=_bearer(token), timeout=10)
    assert answer.status_code == 200, answer.text
    assert answer.json()["policy"] == "required" and answer.json()["tracking_number"]
    return company_id


def start_portal_sign_in(page: Page, suite: Suite, person: Person) -> None:
    page.goto(suite.portal)
    page.click("#login")
    expect(page.locator("h1")).to_have_text("Sign in")
    page.fill("#username", person.username)
    page.fill("#password", person.password)
    page.get_by_role("button", name="Sign in").click()


def expect_enrolment_page(page: Page) -> None:
    expect(page.locator("h1")).to_have_text("Add a passkey")
    expect(page.locator("#mfa-required")).to_have_text(
        "Your company requires a second factor. Add one to continue.")
    expect(page.locator("#not-now")).to_have_count(0)
    expect(page.locator("#signed-in-as")).to_have_count(0)


def test_a_company_with_a_required_policy_cannot_skip_enrolment(
        suite: Suite, helpdesk, steps):  # noqa: F811
    person = activate_through_api(suite, Person("Rosa", "Mendez", Company.new()))
    require_a_factor(suite, helpdesk, person)
    page = steps.new_page()
    start_portal_sign_in(page, suite, person)
    expect_enrolment_page(page)
    assert "/account/add-passkey" in page.url
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "mfa-required-en.png"), full_page=True)
    steps.shot(page, "enrolment required, no Not now")

    # The relying party is out of reach: the portal's sign-in comes straight back here.
    page.goto(suite.portal)
    page.click("#login")
    expect_enrolment_page(page)
    steps.shot(page, "the portal's sign-in is sent back to enrolment")

    # An authenticator app, from the page's own link.
    page.click("#add-authenticator-app")
    expect(page.locator("h1")).to_have_text("Sign-in security")
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    page.fill("#code", pyotp.TOTP(secret).now())
    steps.shot(page, "authenticator app code typed")
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("p.notice[role=status]")).to_have_text(
        "Your authenticator app is set up.")
    steps.shot(page, "authenticator app set up, recovery codes shown")

    # Continue: on to the portal, signed in.
    page.click("#continue")
    expect(page.locator("#signed-in-as")).to_have_attribute("data-user-id", person.user_id)
    steps.shot(page, "signed in to the portal after enrolment")
