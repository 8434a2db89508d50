"""Issue 27 in a real browser: the help-desk console started by ``make run`` (the suite's
runner). The bootstrap help-desk administrator signs in to the console through Portico,
finds a user whose ID went inactive, and reactivates it with a reason, by keyboard; the
console shows the tracking number identity returned. Every screen passes axe-core (no
serious or critical violation). Each screen's screenshot is what
docs/console.md shows: ``UPDATE_CONSOLE_SCREENSHOTS=1`` writes them to docs/console/ (else
to tests/browser/artifacts/console/, which git ignores).
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from services.common.tracking_numbers import is_valid
from tests.support import free_port

from .people import Company, Person, activate_through_api
from .suite import Suite
from .test_pages import BLOCKING_IMPACTS

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = (REPO / "docs" / "console" if os.environ.get("UPDATE_CONSOLE_SCREENSHOTS")
               else Path(__file__).resolve().parent / "artifacts" / "console")


AXE = Axe()


def screen(page: Page, steps, name: str) -> None:
    """A step's screenshot, kept for docs/console.md too, once axe-core (injected into the
    page) finds no serious or critical violation on it."""
    blocking = [f"axe {v['id']} ({v['impact']}): {v['help']} at "
                f"{[', '.join(n['target']) for n in v['nodes']]}"
                for v in AXE.run(page).response["violations"]
                if v["impact"] in BLOCKING_IMPACTS]
    assert not blocking, f"{name}: {blocking}"
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)
    steps.shot(page, name)


def make_inactive(page: Page, suite: Suite, person: Person) -> None:
    """The person signs in at an identity whose lifecycle clock is 121 days ahead: their
    user ID turns inactive, as it would after 120 days without a sign-in."""
    aged = suite.start_identity(free_port(), CLOCK_OFFSET_DAYS="121")
    page.goto(f"{aged}/login")
    page.fill("#username", person.username)
    page.fill("#password", person.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Your user ID is inactive")


def test_the_bootstrap_administrator_reactivates_an_inactive_user_from_the_console(
        suite: Suite, steps):
    bob = activate_through_api(suite, Person("Bob", "Dormant", Company.new()))
    make_inactive(steps.new_page(), suite, bob)
    admin = json.loads((suite.var_dir / "bootstrap.json").read_text())["administrator"]
    console = suite.url("console")
    page = steps.new_page()

    page.goto(console)
    screen(page, steps, "signed-out")
    page.click("#login")
    page.fill("#username", admin["username"])
    page.fill("#password", admin["password"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("#search-form")).to_be_visible()

    page.fill("#q", bob.username)
    page.keyboard.press("Enter")
    result = page.locator(f"#result-{bob.user_id}")
    expect(result).to_have_attribute("data-status", "inactive")
    screen(page, steps, "search")
    result.locator("a").click()

    expect(page.locator("#user-status")).to_have_attribute("data-status", "inactive")
    screen(page, steps, "user")
    # By keyboard: the reactivation's labelled reason, then Tab to its button and Enter
    # (a supervisor is also offered other actions, each with a Reason of its own).
    page.locator("#why-reactivate").focus()
    page.keyboard.type("Called from the office; identity checked by the agent")
    page.keyboard.press("Tab")
    expect(page.locator("#submit-reactivate")).to_be_focused()
    page.keyboard.press("Enter")

    tracking = page.locator("#tracking-number")
    expect(tracking).to_be_visible()
    assert is_valid(tracking.inner_text()), tracking.inner_text()
    expect(page.locator("#user-status")).to_have_attribute("data-status", "active")
    screen(page, steps, "reactivated")

    page.goto(f"{console}/users/{bob.user_id}?lang=es")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    expect(page.locator("#factors-title")).to_have_text("Segundos factores")
    screen(page, steps, "user-es")
    # No inline script anywhere: the browser reported no CSP refusal.
    assert not [m for m in steps.console if re.search("Content Security Policy", m)], steps.console
