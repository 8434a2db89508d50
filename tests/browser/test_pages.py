"""Issue 29 in a real browser: pages people can find their way through.

From the sign-in page alone a person reaches forgot password, forgot username, the first
login and enrollment by clicking (and by keyboard, with a visible focus); switching to
Español keeps the authorization request and the sign-in still completes; at 360 px no
page needs horizontal scrolling; axe-core finds no serious or critical violation on any
page, in English or Spanish. Each page's screenshot, in both languages, is what
docs/pages.md shows: ``UPDATE_PAGE_SCREENSHOTS=1`` writes them to docs/pages/ (else to
tests/browser/artifacts/pages/, which git ignores).
"""

from __future__ import annotations

import os
import re
import uuid
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Page, expect

from tests.support import free_port

from .flows import activate_in_browser, confirm_email_in_browser, enroll_in_browser
from .people import Company, Person, activate_through_api, subject
from .suite import JOURNEY_ENV, Suite, link_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

REPO = Path(__file__).resolve().parents[2]
DOCS = REPO / "docs" / "pages.md"
SCREENSHOTS = (REPO / "docs" / "pages" if os.environ.get("UPDATE_PAGE_SCREENSHOTS")
               else Path(__file__).resolve().parent / "artifacts" / "pages")
HELPDESK_PHONE = JOURNEY_ENV["HELPDESK_PHONE"]
DESKTOP = {"width": 1024, "height": 720}
PHONE = {"width": 360, "height": 740}
BLOCKING_IMPACTS = ("serious", "critical")
VERIFIER = "browser-" + "v" * 40


class Inspector:
    """A ``steps`` for the shared flows that, at each named step, also runs axe-core, checks
    the page at 360 px for horizontal scrolling, and keeps a screenshot for the docs."""

    def __init__(self, steps, lang: str) -> None:
        self.steps = steps
        self.lang = lang
        self.axe = Axe()
        self.problems: list[str] = []
        self.names: list[str] = []

    def shot(self, page: Page, name: str) -> None:
        where = f"{name} ({self.lang})"
        expect(page.locator("html")).to_have_attribute("lang", self.lang)
        expect(page.locator("footer #helpdesk")).to_contain_text(HELPDESK_PHONE)
        for violation in self.axe.run(page).response["violations"]:
            if violation["impact"] in BLOCKING_IMPACTS:
                targets = [", ".join(node["target"]) for node in violation["nodes"]]
                self.problems.append(f"{where}: axe {violation['id']} ({violation['impact']}): "
                                     f"{violation['help']} at {targets}")
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
        page.screenshot(path=str(SCREENSHOTS / f"{slug}-{self.lang}.png"), full_page=True)
        self.names.append(slug)
        page.set_viewport_size(PHONE)
        width = page.evaluate("document.documentElement.scrollWidth")
        if width > PHONE["width"]:
            self.problems.append(f"{where}: {width} px wide at 360 px (horizontal scrolling)")
        page.set_viewport_size(DESKTOP)
        self.steps.shot(page, where)


@pytest.fixture(scope="module")
def aged_identity(suite: Suite) -> str:
    """The suite's identity, on a lifecycle clock 121 days ahead (inactivity)."""
    return suite.start_identity(free_port(), CLOCK_OFFSET_DAYS="121")


@pytest.fixture(scope="module")
def consent_client(suite: Suite) -> dict[str, str]:
    """A third-party application: people are asked before it gets their data."""
    return suite.iamctl("clients", "create", "--name", "Travel Expense Reports", "--public",
                        "--grant", "authorization_code", "--scope", "openid profile email",
                        "--redirect-uri", "http://127.0.0.1:9/callback")


def authorize_url(suite: Suite, client: dict[str, str], lang: str) -> str:
    return f"{suite.identity}/authorize?" + urlencode({
        "response_type": "code", "client_id": client["client_id"],
        "redirect_uri": "http://127.0.0.1:9/callback", "scope": "openid profile email",
        "state": uuid.uuid4().hex, "nonce": uuid.uuid4().hex, "ui_locales": lang,
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256"})


def sign_in(page: Page, person: Person, spanish: bool) -> None:
    page.fill("#username", person.username)
    page.fill("#password", person.password)
    page.get_by_role("button", name="Entrar" if spanish else "Sign in").click()


@pytest.mark.parametrize("lang", ["en", "es"])
def test_every_page_passes_axe_fits_360_px_and_is_screenshot(
        suite: Suite, steps, aged_identity, consent_client, lang):
    spanish = lang == "es"
    person = Person("Lucia" if spanish else "Laura", "Paginas", Company.new(), language=lang)
    inspect = Inspector(steps, lang)
    page = steps.new_page(locale="es-MX" if spanish else "en-US")
    page.set_viewport_size(DESKTOP)
    query = f"?ui_locales={lang}"

    page.goto(f"{suite.identity}/login{query}")
    inspect.shot(page, "sign in")
    page.fill("#username", "nobody")
    page.fill("#password", "not-the-password-1")
    page.locator("form button[type=submit]").click()
    expect(page.locator("#login-error")).to_be_visible()
    inspect.shot(page, "sign in refused")

    page.goto(f"{suite.identity}/enroll{query}")
    inspect.shot(page, "enroll")
    enroll_in_browser(page, inspect, suite, person, spanish=spanish)
    confirm_email_in_browser(page, inspect, suite, person, spanish=spanish)
    page.goto(f"{suite.identity}/activate{query}")
    inspect.shot(page, "first login")
    activate_in_browser(page, inspect, suite, person, spanish=spanish)

    page.goto(f"{suite.identity}/forgot-password{query}")
    inspect.shot(page, "forgot password")
    page.fill("#username_or_email", person.username)
    page.locator("form button[type=submit]").click()
    expect(page.locator("main p[role=status]")).to_be_visible()
    inspect.shot(page, "check your email")
    page.goto(link_in(suite.mail(person.email, subject(person, "reset")), "/reset-password"))
    inspect.shot(page, "choose a new password")
    page.goto(f"{suite.identity}/forgot-username{query}")
    inspect.shot(page, "forgot username")

    page.goto(f"{suite.identity}/login?" + urlencode({"next": "/account", "ui_locales": lang}))
    sign_in(page, person, spanish)
    expect(page.locator("#email")).to_have_value(person.email)
    inspect.shot(page, "account")
    page.goto(f"{suite.identity}/account/consents{query}")
    inspect.shot(page, "consents")
    page.goto(authorize_url(suite, consent_client, lang))
    expect(page.locator("button[value=allow]")).to_be_visible()
    inspect.shot(page, "consent")
    page.goto(f"{suite.portal}/?lang={lang}")
    inspect.shot(page, "portal welcome")
    page.click("#login")  # signed in at identity already: straight back, signed in
    expect(page.locator("#signed-in-as")).to_be_visible()
    inspect.shot(page, "portal home")
    page.goto(f"{suite.identity}/logout?id_token_hint=not-a-token&ui_locales={lang}")
    inspect.shot(page, "error")
    page.goto(f"{suite.identity}/logout{query}")
    inspect.shot(page, "sign out")
    page.locator("button[value=yes]").click()
    inspect.shot(page, "signed out")

    page.goto(f"{aged_identity}/login{query}")
    sign_in(page, person, spanish)
    expect(page.locator("main [role=alert]")).to_contain_text(HELPDESK_PHONE)
    inspect.shot(page, "inactive")

    assert not inspect.problems, "\n".join(inspect.problems)
    documented = DOCS.read_text()
    missing = [n for n in inspect.names if f"pages/{n}-{lang}.png" not in documented]
    assert not missing, f"docs/pages.md does not show {missing} ({lang})"


def test_from_the_sign_in_page_every_way_on_is_a_click_away(suite: Suite, steps):
    page = steps.new_page()
    for link, heading in (("Forgot password?", "Forgot your password?"),
                          ("Forgot username?", "Forgot your username?"),
                          ("First time here? Sign in with your Access Code", "First login"),
                          ("Enroll", "Enroll as an account manager")):
        page.goto(f"{suite.identity}/login")
        expect(page.locator("#helpdesk")).to_contain_text(HELPDESK_PHONE)
        page.get_by_role("link", name=link, exact=True).click()
        expect(page.locator("h1")).to_have_text(heading)
        steps.shot(page, heading)


def test_the_sign_in_page_works_by_keyboard_with_a_visible_focus(suite: Suite, steps):
    page = steps.new_page()
    page.goto(f"{suite.identity}/login")
    expect(page.locator("#username")).to_be_focused()  # autofocus
    order = []
    for _ in range(3):
        page.keyboard.press("Tab")
        order.append(page.evaluate("document.activeElement.id || document.activeElement.tagName"))
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline != "none", f"no visible focus on {order[-1]}"
    assert order == ["password", "BUTTON", "forgot-password"], order
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text("Forgot your password?")


def test_switching_to_spanish_keeps_the_authorization_request_and_sign_in_completes(
        suite: Suite, steps):
    person = activate_through_api(suite, Person("Sofia", "Idioma", Company.new()))
    page = steps.new_page(locale="en-US")
    page.goto(suite.portal)
    page.click("#login")
    expect(page.locator("h1")).to_have_text("Sign in")
    before = parse_qs(urlsplit(parse_qs(urlsplit(page.url).query)["next"][0]).query)
    steps.shot(page, "sign-in in English")

    page.get_by_role("link", name="Español").click()
    expect(page.locator("h1")).to_have_text("Iniciar sesión")
    expect(page.locator("html")).to_have_attribute("lang", "es")
    after = parse_qs(urlsplit(parse_qs(urlsplit(page.url).query)["next"][0]).query)
    assert after.pop("ui_locales") == ["es"]
    before.pop("ui_locales", None)
    assert after == before and "client_id" in after and "state" in after
    steps.shot(page, "sign-in in Spanish")

    sign_in(page, person, spanish=True)
    expect(page.locator("#signed-in-as")).to_have_attribute("data-user-id", person.user_id)
    steps.shot(page, "signed in to the portal")


def test_at_360_px_the_sign_in_form_needs_no_horizontal_scrolling(suite: Suite, steps):
    page = steps.new_page()
    page.set_viewport_size(PHONE)
    for lang in ("en", "es"):
        page.goto(f"{suite.identity}/login?ui_locales={lang}")
        assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
        for field in ("#username", "#password", "form button[type=submit]"):
            box = page.locator(field).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= PHONE["width"]
        steps.shot(page, f"sign in at 360 px ({lang})")
