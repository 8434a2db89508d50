"""The journey of issue 10 in a real browser, against the whole suite as real processes.

Enroll on identity's page → confirmation email → confirm → welcome email's Access Code →
first login with code + PIN + word → credentials → sign in to the portal → a new account
manager's home page → ask for ``reports.view`` → the company's principal administrator
approves in the portal (after a step-up with an authenticator app) → the requester's overview, email and home page show it. Then:
forgot password end to end, a 121-day-old account refused with the help-desk message,
and the same pages in Spanish with ``ui_locales=es``.
"""

from __future__ import annotations

import re
import time
from urllib.parse import quote

import pytest
import requests
from playwright.sync_api import Page, expect

from tests.support import free_port

from .flows import (
    activate_in_browser,
    confirm_email_in_browser,
    enroll_in_browser,
    second_step_in_browser,
    set_up_authenticator_elsewhere,
)
from .people import ANSWERS, Company, Person, activate_through_api, subject
from .suite import JOURNEY_ENV, Suite, link_in

pytestmark = [pytest.mark.slow, pytest.mark.browser]

HELPDESK_PHONE = JOURNEY_ENV["HELPDESK_PHONE"]
EVENTUALLY = 30.0  # seconds for events to travel identity → permissions/tracking/notifier


@pytest.fixture(scope="module")
def helpdesk(suite: Suite) -> dict[str, str]:
    """An operator tool's client: ``permissions.admin`` (designates principals) and
    ``iam.helpdesk`` (looks users up). The bootstrap admin client only has ``iam.admin``
    for identity, so the test registers this one with iamctl, as an operator would."""
    return suite.iamctl("clients", "create", "--name", "browser-tests-helpdesk",
                        "--grant", "client_credentials",
                        "--scope", "permissions.admin iam.helpdesk",
                        "--audience", "permissions", "--audience", "identity")


def designate_principal(suite: Suite, helpdesk: dict[str, str], person: Person) -> str:
    """Help desk: make ``person`` their company's principal administrator; → company id."""
    lookup = requests.get(f"{suite.identity}/admin/v1/users", timeout=10,
                          params={"q": person.username},
                          headers=_bearer(suite.client_token(helpdesk, "iam.helpdesk",
                                                             "identity")))
    assert lookup.status_code == 200, lookup.text
    company_id = next(u["company_id"] for u in lookup.json()["items"]
                      if u["id"] == person.user_id)
    token = suite.client_token(helpdesk, "permissions.admin", "permissions")
    deadline = time.monotonic() + EVENTUALLY
    while True:  # permissions learns of the user from identity's event
        answer = requests.put(f"{suite.permissions}/admin/v1/companies/{company_id}/principal",
                              json={"user_id": person.user_id, "why": "named by the CFO"},
                              headers=_bearer(token), timeout=10)
        if answer.status_code == 200 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert answer.status_code == 200, answer.text
    return company_id


def admit_member(suite: Suite, helpdesk: dict[str, str], person: Person) -> None:
    """Help desk: approve ``person``'s membership of a company that already had members
    (the principal could too, from their own sign-in)."""
    if person.user_id is None:  # activated in the browser: the help desk looks them up
        lookup = requests.get(f"{suite.identity}/admin/v1/users", timeout=10,
                              params={"q": person.username},
                              headers=_bearer(suite.client_token(helpdesk, "iam.helpdesk",
                                                                 "identity")))
        assert lookup.status_code == 200, lookup.text
        person.user_id = next(u["id"] for u in lookup.json()["items"]
                              if u["username"] == person.username)
    token = suite.client_token(helpdesk, "permissions.admin", "permissions")
    deadline = time.monotonic() + EVENTUALLY
    while True:  # permissions learns of the newcomer from identity's event
        waiting = requests.get(f"{suite.permissions}/v1/membership-requests", timeout=10,
                               params={"view": "to_decide"}, headers=_bearer(token))
        assert waiting.status_code == 200, waiting.text
        found = [i for i in waiting.json()["items"] if i["user_id"] == person.user_id]
        if found or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert found, f"no membership request of {person.username}"
    answer = requests.post(f"{suite.permissions}/v1/membership-requests/{found[0]['id']}/approve",
                           json={"comment": "works with us"}, headers=_bearer(token), timeout=10)
    assert answer.status_code == 200, answer.text


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# Browser steps -------------------------------------------------------------------------
def sign_in_to_portal(page: Page, steps, suite: Suite, person: Person, *,
                      password: str | None = None, spanish: bool = False) -> None:
    if spanish:
        page.goto(f"{suite.portal}/login?lang=es")
    else:
        page.goto(suite.portal)
        page.click("#login")
    expect(page.locator("h1")).to_have_text("Iniciar sesión" if spanish else "Sign in")
    page.fill("#username", person.username)
    page.fill("#password", password or person.password)
    steps.shot(page, f"portal sign-in as {person.given_name}")
    page.get_by_role("button", name="Entrar" if spanish else "Sign in").click()
    signed_in = page.locator("#signed-in-as")
    if person.user_id:
        expect(signed_in).to_have_attribute("data-user-id", person.user_id)
    else:  # enrolled in the browser: the portal tells us who that is
        expect(signed_in).to_be_visible()
        person.user_id = signed_in.get_attribute("data-user-id")
    steps.shot(page, f"portal home of {person.given_name}")


def tile_keys(page: Page) -> set[str]:
    return set(page.locator("#home-sections li.tile").evaluate_all(
        "tiles => tiles.map(t => t.dataset.key)"))


def reload_until(page: Page, locator: str, attribute: str, value: str,
                 within: float = EVENTUALLY) -> None:
    """Reload the page until ``locator`` has ``attribute`` = ``value`` (events travel)."""
    deadline = time.monotonic() + within
    while True:
        element = page.locator(locator)
        if element.count() and element.first.get_attribute(attribute) == value:
            return
        if time.monotonic() > deadline:
            expect(element).to_have_attribute(attribute, value, timeout=1)
        page.wait_for_timeout(500)
        page.reload()


# The journeys --------------------------------------------------------------------------
def test_an_account_manager_enrolls_activates_and_gets_reports_approved_by_the_principal(
        suite: Suite, helpdesk, steps):
    company = Company.new()
    principal = activate_through_api(suite, Person("Paula", "Principal", company))
    designate_principal(suite, helpdesk, principal)
    ana = Person("Ana", "Garcia", company)
    page = steps.new_page()

    enroll_in_browser(page, steps, suite, ana)
    confirm_email_in_browser(page, steps, suite, ana)
    activate_in_browser(page, steps, suite, ana)
    # Paula's company already has a member (Paula): Ana joins once admitted.
    admit_member(suite, helpdesk, ana)
    sign_in_to_portal(page, steps, suite, ana)

    # A new account manager: tracking and requesting access, no reports yet.
    keys = tile_keys(page)
    assert {"tracking", "access-request"} <= keys and "reports" not in keys, keys
    reload_until(page, f"#tx-{ana.tracking_number}", "data-status", "completed")

    page.check("#entitlement-reports-view")
    page.fill("#justification", "Monthly card spend reports for the travel program")
    steps.shot(page, "request reports.view")
    page.click("#request-submit")
    expect(page.locator("p.message-success")).to_contain_text("Request sent")
    request_tn = re.search(r"PTC-[0-9A-Z-]+", page.locator("p.message-success").inner_text())
    assert request_tn, page.locator("#messages").inner_text()
    request_tn = request_tn.group(0).rstrip(".")
    mine = page.locator("#my-requests tr.access-request", has_text=request_tn)
    expect(mine).to_have_attribute("data-status", "pending")
    steps.shot(page, "request pending")

    # The principal administrator decides, in a browser of their own.
    # Approving asks for a second factor (a step-up): Paula sets up an authenticator app.
    admin = steps.new_page()
    sign_in_to_portal(admin, steps, suite, principal)
    secret = set_up_authenticator_elsewhere(
        steps, suite, lambda other: sign_in_to_portal(other, steps, suite, principal))
    admin.goto(suite.portal)
    decision = admin.locator(f"form.decision[data-tracking-number='{request_tn}']")
    expect(decision).to_contain_text("reports.view")
    decision.locator("input[name=comment]").fill("Approved for the quarterly review")
    steps.shot(admin, "principal inbox")
    decision.locator("button[value=approve]").click()
    second_step_in_browser(admin, steps, secret, "approving")
    expect(admin.locator("p.message-success")).to_contain_text(f"{request_tn} approved")
    expect(admin.locator(f"form.decision[data-tracking-number='{request_tn}']")).to_have_count(0)
    steps.shot(admin, "approved")

    # The requester sees it: the overview, the email, and the reports tile.
    approved = suite.mail(ana.email, subject(ana, "approved"))
    assert "reports.view" in (approved.get_body(("plain",)).get_content())
    reload_until(page, f"#tx-{request_tn}", "data-status", "approved")
    expect(page.locator("#my-requests tr.access-request", has_text=request_tn)
           ).to_have_attribute("data-status", "approved")
    expect(page.locator("#section-reports")).to_be_visible()
    steps.shot(page, "requester sees reports")


def test_forgot_password_by_email_link_and_security_question_then_sign_in(suite: Suite, steps):
    person = activate_through_api(suite, Person("Ines", "Olvido", Company.new()))
    questions = {item["text"]: item["key"] for item in requests.get(
        f"{suite.identity}/v1/security-questions", headers={"Accept-Language": "en"},
        timeout=10).json()["items"]}
    page = steps.new_page()

    page.goto(f"{suite.identity}/forgot-password")
    expect(page.locator("h1")).to_have_text("Forgot your password?")
    page.fill("#username_or_email", person.username)
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("h1")).to_have_text("Check your email")
    steps.shot(page, "reset requested")

    reset_link = link_in(suite.mail(person.email, subject(person, "reset")), "/reset-password")
    page.goto(reset_link)
    expect(page.locator("h1")).to_have_text("Choose a new password")
    question = page.locator("label[for=answer]").inner_text().strip()
    assert question in questions, (question, questions)
    new_password = "Quiet-Lantern-77#"
    page.fill("#answer", ANSWERS[questions[question]])
    page.fill("#password", new_password)
    page.fill("#password_confirm", new_password)
    steps.shot(page, "new password filled")
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("h1")).to_have_text("Password changed")
    steps.shot(page, "password changed")

    # The link is single use.
    page.goto(reset_link)
    expect(page.locator("h1")).to_have_text("This link cannot be used")

    # The old password is refused, the new one signs in to the portal.
    portal = steps.new_page()
    portal.goto(suite.portal)
    portal.click("#login")
    portal.fill("#username", person.username)
    portal.fill("#password", person.password)
    portal.get_by_role("button", name="Sign in").click()
    expect(portal.locator("p.error[role=alert]")).to_contain_text("not correct")
    steps.shot(portal, "old password refused")
    portal.fill("#username", person.username)
    portal.fill("#password", new_password)
    portal.get_by_role("button", name="Sign in").click()
    expect(portal.locator("#signed-in-as")).to_have_attribute("data-user-id", person.user_id)
    steps.shot(portal, "signed in with the new password")


def test_an_account_unused_for_121_days_is_refused_with_the_help_desk_message(
        suite: Suite, steps):
    company = Company.new()
    olga = activate_through_api(suite, Person("Olga", "Old", company))
    oscar = activate_through_api(suite, Person("Oscar", "Viejo", company, language="es"))
    # The same data, seen by an identity whose lifecycle clock is 121 days ahead.
    aged = suite.start_identity(free_port(), CLOCK_OFFSET_DAYS="121")
    page = steps.new_page()

    page.goto(f"{aged}/login")
    page.fill("#username", olga.username)
    page.fill("#password", olga.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Your user ID is inactive")
    expect(page.locator("main, body").last).to_contain_text("120 days")
    expect(page.locator("[role=alert]")).to_contain_text(f"call the help desk at {HELPDESK_PHONE}")
    steps.shot(page, "inactive (en)")
    assert HELPDESK_PHONE in (suite.mail(olga.email, subject(olga, "deactivated"))
                              .get_body(("plain",)).get_content())

    page.goto(f"{aged}/login?ui_locales=es")
    expect(page.locator("h1")).to_have_text("Iniciar sesión")
    page.fill("#username", oscar.username)
    page.fill("#password", oscar.password)
    page.get_by_role("button", name="Entrar").click()
    expect(page.locator("h1")).to_have_text("Su nombre de usuario está inactivo")
    expect(page.locator("[role=alert]")).to_contain_text(
        f"llame a la mesa de ayuda al {HELPDESK_PHONE}")
    steps.shot(page, "inactive (es)")

    # Inactive is stored: the suite's own identity (clock not moved) refuses her too.
    page.goto(f"{suite.identity}/login")
    page.fill("#username", olga.username)
    page.fill("#password", olga.password)
    page.get_by_role("button", name="Sign in").click()
    expect(page.locator("h1")).to_have_text("Your user ID is inactive")

    # ui_locales=es comes first, before the user's own (English) preference: this is the
    # Spanish login page the portal's ?lang=es leads to (ui_locales inside `next`).
    page.goto(f"{aged}/login?next=" + quote("/authorize?response_type=code&ui_locales=es"))
    expect(page.locator("h1")).to_have_text("Iniciar sesión")
    page.fill("#username", olga.username)
    page.fill("#password", olga.password)
    page.get_by_role("button", name="Entrar").click()
    steps.shot(page, "inactive (en user, ui_locales=es)")
    expect(page.locator("h1")).to_have_text("Su nombre de usuario está inactivo")


def test_the_journey_pages_render_in_spanish_with_ui_locales_es(suite: Suite, steps):
    luis = Person("Luis", "Martinez", Company.new(), language="es")
    page = steps.new_page(locale="en-US")  # the browser asks for English: ui_locales wins

    enroll_in_browser(page, steps, suite, luis, spanish=True)
    confirm_email_in_browser(page, steps, suite, luis, spanish=True)
    activate_in_browser(page, steps, suite, luis, spanish=True)
    page.goto(f"{suite.identity}/forgot-password?ui_locales=es")
    expect(page.locator("h1")).to_have_text("¿Olvidó su contraseña?")

    sign_in_to_portal(page, steps, suite, luis, spanish=True)
    expect(page.locator("#section-tracking")).to_contain_text("Seguimiento de estado")
