"""Steps a person takes in the browser, shared by the browser tests: enroll on identity's
page, confirm the email from the confirmation email, first login with the welcome
email's Access Code; set up an authenticator app and give its code at a step-up.
``steps`` is the conftest's recorder (anything with ``shot``)."""

from __future__ import annotations

import time

import pyotp
from playwright.sync_api import Page, expect

from .people import ANSWERS, PIN, WORD, Person, subject
from .suite import Suite, access_code_in, link_in


def enroll_in_browser(page: Page, steps, suite: Suite, person: Person, *,
                      spanish: bool = False) -> None:
    query = "?ui_locales=es" if spanish else ""
    page.goto(f"{suite.identity}/enroll{query}")
    expect(page.locator("h1")).to_have_text("Inscríbase como administrador de cuentas" if spanish
                                            else "Enroll as an account manager")
    form = person.enrollment()
    for name in ("given_name", "family_name", "email", "phone", "job_title"):
        page.fill(f"#{name}", form[name])
    page.select_option("#preferred_language", person.language)
    page.fill("#company_name", person.company.name)
    page.fill("#tax_id", person.company.tax_id)
    address = form["company"]["address"]
    page.fill("#address_line1", address["line1"])
    page.fill("#city", address["city"])
    page.fill("#region", address["region"])
    page.fill("#postal_code", address["postal_code"])
    page.fill("#country", address["country"])
    page.fill("#account_0", person.account)
    page.fill("#pin", PIN)
    page.fill("#verification_word", WORD)
    steps.shot(page, "enroll form filled")
    page.locator("main form button[type=submit], form button[type=submit]").last.click()
    expect(page.locator("h1")).to_have_text("Inscripción recibida" if spanish
                                            else "Enrollment received")
    person.tracking_number = page.locator("[data-testid=tracking-number]").inner_text().strip()
    steps.shot(page, "enrollment received")


def confirm_email_in_browser(page: Page, steps, suite: Suite, person: Person, *,
                             spanish: bool = False) -> None:
    link = link_in(suite.mail(person.email, subject(person, "confirm")), "/enroll/verify")
    page.goto(link)
    expect(page.locator("h1")).to_have_text("Confirme su correo electrónico" if spanish
                                            else "Confirm your email")
    steps.shot(page, "confirm button")
    page.get_by_role("button", name="Confirmar mi correo electrónico" if spanish
                     else "Confirm my email address").click()
    expect(page.locator("h1")).to_have_text("Correo electrónico confirmado" if spanish
                                            else "Email confirmed")
    steps.shot(page, "email confirmed")


def activate_in_browser(page: Page, steps, suite: Suite, person: Person, *,
                        spanish: bool = False) -> None:
    code = access_code_in(suite.mail(person.email, subject(person, "welcome")))
    page.goto(f"{suite.identity}/activate" + ("?ui_locales=es" if spanish else ""))
    expect(page.locator("h1")).to_have_text("Primer ingreso" if spanish else "First login")
    page.fill("#access_code", code)
    page.fill("#pin", PIN)
    page.fill("#verification_word", WORD.lower())  # the word is compared case-insensitively
    steps.shot(page, "first login filled")
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("h1")).to_have_text("Elija sus credenciales" if spanish
                                            else "Choose your credentials")
    page.fill("#username", person.username)
    page.fill("#password", person.password)
    page.fill("#password_confirm", person.password)
    for number, (question, answer) in enumerate(ANSWERS.items(), start=1):
        page.select_option(f"#question_{number}", question)
        page.fill(f"#answer_{number}", answer)
    steps.shot(page, "credentials filled")
    page.locator("form button[type=submit]").last.click()
    expect(page.locator("h1")).to_have_text("Su ID de usuario está activo" if spanish
                                            else "Your user ID is active")
    steps.shot(page, "user ID active")


def set_up_authenticator_in_browser(page: Page, steps, suite: Suite) -> str:
    """The signed-in user of ``page`` (identity's session, from a sign-in to the portal)
    sets up an authenticator app at /account/security; the app's secret (the key shown)."""
    page.goto(f"{suite.identity}/account/security")
    expect(page.locator("h1")).to_have_text("Sign-in security")
    page.get_by_role("button", name="Set up an authenticator app").click()
    secret = page.locator("#totp-secret").inner_text().strip()
    steps.shot(page, "authenticator app set-up")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.get_by_role("button", name="Confirm").click()
    expect(page.locator("#codes-title")).to_be_visible()
    steps.shot(page, "authenticator app confirmed")
    return secret


def set_up_authenticator_elsewhere(steps, suite: Suite, sign_in) -> str:
    """An authenticator app set up in a browser of its own, signed in by ``sign_in(page)``:
    set up in the browser that is to step up, its confirming code would already have
    proved it there (docs/authentication.md), and no step-up would be asked. The app's
    secret."""
    other = steps.new_page()
    sign_in(other)
    return set_up_authenticator_in_browser(other, steps, suite)


def second_step_in_browser(page: Page, steps, secret: str, why: str) -> None:
    """On identity's second-step page (a step-up): type the app's code. The code of the
    next 30-second step: the current one may have been used already (set-up, sign-in),
    and identity accepts the steps either side of now."""
    expect(page.locator("h1")).to_have_text("Second step")
    page.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))
    steps.shot(page, f"second step for {why}")
    page.get_by_role("button", name="Continue").click()
