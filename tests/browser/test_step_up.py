"""Issue 26 in a real browser: in the portal, cancelling a card asks for a step-up and
succeeds after it.

A principal administrator (cards.cancel, which requires ``urn:portico:acr:mfa``) signs in
to the portal with a password, sets up an authenticator app at identity's
/account/security, opens the portal's Cards page and clicks "Cancel card": the portal
checks cards.cancel, hears ``step_up_required``, sends the browser to Portico with
``acr_values``, identity asks for the app's code (computed here with pyotp), and back in
the portal the card is cancelled. ``UPDATE_PAGE_SCREENSHOTS=1`` writes the steps'
screenshots to docs/pages/ (step-up-*.png), which docs/authentication.md shows.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from .flows import second_step_in_browser, set_up_authenticator_elsewhere
from .people import Company, Person, activate_through_api
from .suite import Suite
from .test_journey import designate_principal, helpdesk, sign_in_to_portal  # noqa: F401

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = (REPO / "docs" / "pages" if os.environ.get("UPDATE_PAGE_SCREENSHOTS")
               else Path(__file__).resolve().parent / "artifacts" / "pages")


class DocShots:
    """The conftest's recorder, which also keeps each step for the docs."""

    def __init__(self, steps) -> None:
        self.steps = steps

    def shot(self, page: Page, name: str) -> None:
        self.steps.shot(page, name)
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        page.screenshot(path=str(SCREENSHOTS / f"step-up-{slug}.png"), full_page=True)


def test_cancelling_a_card_in_the_portal_asks_for_a_step_up_and_succeeds_after_it(
        suite: Suite, helpdesk, steps):  # noqa: F811 (the fixture imported above)
    shots = DocShots(steps)
    sara = activate_through_api(suite, Person("Sara", "Segura", Company.new()))
    designate_principal(suite, helpdesk, sara)
    last5 = sara.account[-5:]
    page = steps.new_page()
    sign_in_to_portal(page, steps, suite, sara)
    secret = set_up_authenticator_elsewhere(  # no secret in the docs
        steps, suite, lambda other: sign_in_to_portal(other, steps, suite, sara))

    page.goto(f"{suite.portal}/cards")
    card = page.locator(f"#card-{last5}")
    expect(card).to_have_attribute("data-status", "active")
    expect(card).to_contain_text(last5)
    shots.shot(page, "cards page")
    page.locator(f"#cancel-button-{last5}").click()

    # Portico asks for the second factor (the portal sent acr_values=…:mfa).
    assert "/login/second-factor" in page.url, page.url
    second_step_in_browser(page, shots, secret, "cancelling a card")

    expect(page.locator("p.message-success")).to_contain_text(f"Card ending {last5} cancelled.")
    expect(page.locator(f"#card-{last5}")).to_have_attribute("data-status", "cancelled")
    expect(page.locator(f"#card-{last5}")).to_contain_text("Cancelled by Sara")
    shots.shot(page, "card cancelled")
