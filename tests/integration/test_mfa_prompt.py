"""The after-sign-in "add a passkey" page and the gate of the company's MFA policy: a
skippable prompt ("Not now" remembered per user in the database), a page that cannot be
skipped once a policy requiring a factor binds the user (and no code from /authorize
until they enrol or prove one), the grace period, and the first login's end."""

from __future__ import annotations

import re
from datetime import timedelta
from urllib.parse import parse_qs, urlencode, urlsplit

import pyotp
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from services.identity import sessions
from services.identity.factors.models import MfaPromptSnooze
from services.identity.models import Company
from services.identity.oidc import keys
from tests.integration.helpers.enrollment import PIN, WORD, access_code, enroll_and_verify
from tests.integration.helpers.factors import post_security_form, set_up_totp
from tests.integration.helpers.lifecycle import PASSWORD, add_user, csrf_of, login, wire
from tests.integration.helpers.oidc import add_client, code_from, code_params

PROMPT = "/account/add-passkey"


@pytest.fixture
def app(make_app, clock):
    app = wire(make_app("identity", session_cookie_secure=False, key_activation_delay=0,
                        mfa_prompt_optional=True), clock)
    settings = app.extensions["portico"].settings
    with app.extensions["portico"].db.transaction() as session:
        keys.ensure_keys(session, Fernet(settings.key_encryption_key))
    return app


def add_company(app, policy: str = "optional", *, set_at=None, grace_days: int = 0,
                name: str = "Acme Cards") -> str:
    with app.extensions["portico"].db.transaction() as session:
        company = Company(name=name, country="US", tax_id_key=name.upper().replace(" ", ""),
                          mfa_policy=policy, mfa_policy_set_at=set_at, mfa_grace_days=grace_days)
        session.add(company)
        session.flush()
        return company.id


def existing_user(app, clock, policy: str, grace_days: int = 0, **kwargs) -> str:
    """A user created a month ago, in a company whose ``policy`` was set a day ago."""
    company_id = add_company(app, policy, set_at=clock() - timedelta(days=1),
                             grace_days=grace_days)
    return add_user(app, company_id=company_id, clock=_ago(clock, 30), **kwargs)


def _ago(clock, days: int):
    class Earlier:
        def __call__(self):
            return clock() - timedelta(days=days)
    return Earlier()


def _amr(app, client) -> list[str] | None:
    cookie = client.get_cookie(sessions.COOKIE)
    with app.test_request_context(headers={"Cookie": f"{cookie.key}={cookie.value}"}):
        found = sessions.load_session()
        return found.amr if found and found.authenticated else None


def not_now(client, next_url: str = "/account"):
    """POST "Not now" (with the session's CSRF token, even where the page has no form)."""
    page = client.get("/account/security")
    return client.post(PROMPT, data={"csrf_token": csrf_of(page.text), "next": next_url})


def _snoozed_until(app, user_id: str):
    with app.extensions["portico"].db.read() as session:
        return session.scalar(select(MfaPromptSnooze.snoozed_until).where(
            MfaPromptSnooze.user_id == user_id))


# -- optional: a skippable nudge ---------------------------------------------------------

def test_a_user_without_a_factor_is_offered_a_passkey_and_may_skip(app, client):
    add_user(app)
    signed_in = login(client)
    assert signed_in.status_code == 303
    assert signed_in.headers["Location"] == PROMPT + "?next=/account"
    page = client.get(signed_in.headers["Location"])
    assert page.status_code == 200
    assert "<h1>Add a passkey</h1>" in page.text and 'id="not-now"' in page.text
    assert 'name="csrf_token"' in page.text and "mfa-required" not in page.text
    # Both factors are set up on /account/security, which leads back here.
    security = re.search(r'id="add-passkey" href="([^"]+)"', page.text).group(1)
    assert security.startswith("/account/security?next=")
    assert 'id="add-authenticator-app"' in page.text


def test_not_now_is_remembered_per_user_for_the_snooze_days(app, client, clock):
    user_id = add_user(app)
    login(client)
    skipped = not_now(client)
    assert skipped.status_code == 303 and skipped.headers["Location"] == "/account"
    assert _snoozed_until(app, user_id) == clock() + timedelta(days=7)
    # Another browser (no cookie shared): the database remembers.
    other = app.test_client()
    assert login(other).headers["Location"] == "/account"
    clock.advance(days=7, seconds=1)
    assert login(app.test_client()).headers["Location"].startswith(PROMPT)
    # A second "Not now" moves the same row.
    later = app.test_client()
    login(later)
    assert not_now(later).status_code == 303
    assert _snoozed_until(app, user_id) == clock() + timedelta(days=7)


def test_not_now_needs_the_csrf_token(app, client):
    user_id = add_user(app)
    login(client)
    refused = client.post(PROMPT, data={"next": "/account"})
    assert refused.status_code == 400
    assert _snoozed_until(app, user_id) is None


def test_the_page_is_for_signed_in_users_and_next_stays_local(app, client):
    assert client.get(PROMPT).status_code == 302
    add_user(app)
    login(client)
    answer = not_now(client, "https://evil.example/")
    assert answer.status_code == 303 and not answer.headers["Location"].startswith("http")


def test_a_user_with_a_factor_is_not_prompted(app, client, clock):
    add_user(app)
    browser = app.test_client()
    login(browser)
    secret, _ = set_up_totp(browser)
    clock.advance(seconds=60)
    assert login(client).headers["Location"].startswith("/login/second-factor")


def test_the_nudge_can_be_turned_off(make_app, clock):
    quiet = wire(make_app("identity", session_cookie_secure=False, mfa_prompt_optional=False),
                 clock)
    add_user(quiet)
    assert login(quiet.test_client()).headers["Location"] == "/account"


def test_the_page_speaks_spanish(app, client):
    add_user(app, language="es")
    location = login(client).headers["Location"]
    page = client.get(location)
    assert "Añadir una llave de acceso" in page.text and "Ahora no" in page.text


# -- required: not skippable, no code from /authorize ------------------------------------

def test_required_after_the_grace_period_cannot_be_skipped(app, client, clock):
    user_id = existing_user(app, clock, "required")
    location = login(client).headers["Location"]
    assert location.startswith(PROMPT)
    page = client.get(location)
    assert page.status_code == 200 and 'id="not-now"' not in page.text
    assert "Your company requires a second factor. Add one to continue." in page.text
    refused = not_now(client)
    assert refused.status_code == 409
    assert _snoozed_until(app, user_id) is None
    assert client.get(location).status_code == 200  # still asked


def test_authorize_issues_no_code_until_a_factor_is_enrolled(app, client, clock):
    existing_user(app, clock, "required")
    client_id, _ = add_client(app)
    login(client)
    asked = "/authorize?" + urlencode(code_params(client_id))
    gated = client.get(asked)
    assert gated.status_code == 302
    location = gated.headers["Location"]
    assert location.startswith(PROMPT)
    assert parse_qs(urlsplit(location).query)["next"] == [asked]
    silent = client.get("/authorize?" + urlencode(code_params(client_id, prompt="none")))
    assert parse_qs(urlsplit(silent.headers["Location"]).query)["error"] == [
        "interaction_required"]
    # Enrol an app from the page's link: the confirming code proves it in this session.
    page = client.get(location)
    security = re.search(r'id="add-passkey" href="([^"]+)"', page.text).group(1)
    assert client.get(security.replace("&amp;", "&")).status_code == 200
    set_up_totp(client)
    assert _amr(app, client) == ["pwd", "otp", "mfa"]
    shown = client.get("/account/security")
    back = re.search(r'id="continue" href="([^"]+)"', shown.text).group(1).replace("&amp;", "&")
    assert back == location
    onward = client.get(back)
    assert onward.status_code == 303 and onward.headers["Location"] == asked
    code_from(client.get(asked))


def test_a_factor_enrolled_elsewhere_must_be_proved_in_this_session(app, client, clock):
    existing_user(app, clock, "required", grace_days=0)
    client_id, _ = add_client(app)
    login(client)  # a password session, before the app exists
    elsewhere = app.test_client()
    login(elsewhere)
    secret, _ = set_up_totp(elsewhere)
    clock.advance(seconds=60)
    asked = "/authorize?" + urlencode(code_params(client_id))
    gated = client.get(asked)
    to_prompt = gated.headers["Location"]
    step = client.get(to_prompt)
    assert step.status_code == 303 and step.headers["Location"].startswith("/login/second-factor")
    page = client.get(step.headers["Location"])
    done = client.post("/login/second-factor", data={
        "code": pyotp.TOTP(secret).at(clock().timestamp()), "csrf_token": csrf_of(page.text),
        "next": parse_qs(urlsplit(step.headers["Location"]).query)["next"][0]})
    assert done.status_code == 303
    onward = client.get(done.headers["Location"])
    assert onward.headers["Location"] == asked
    code_from(client.get(asked))


def test_phishing_resistant_asks_for_a_passkey_even_of_an_app_user(app, client, clock):
    existing_user(app, clock, "phishing_resistant")
    page = client.get(login(client).headers["Location"])
    assert page.status_code == 200
    assert "Your company requires a passkey. Add one to continue." in page.text
    assert 'id="add-authenticator-app"' not in page.text


# -- the grace period ---------------------------------------------------------------------

def test_during_the_grace_period_the_page_is_skippable_and_says_until_when(app, client,
                                                                          clock):
    user_id = existing_user(app, clock, "required", grace_days=14)
    client_id, _ = add_client(app)
    location = login(client).headers["Location"]
    page = client.get(location)
    deadline = clock() - timedelta(days=1) + timedelta(days=14)
    assert 'id="not-now"' in page.text
    assert (f"Your company will require a second factor from "
            f"{deadline.strftime('%B')} {deadline.day}, {deadline.year}.") in page.text
    code_from(client.get("/authorize?" + urlencode(code_params(client_id))))
    assert not_now(client).status_code == 303
    assert _snoozed_until(app, user_id) is not None
    clock.advance(days=14)
    late = app.test_client()
    login(late)
    gated = late.get("/authorize?" + urlencode(code_params(client_id)))
    assert gated.headers["Location"].startswith(PROMPT)
    assert 'id="not-now"' not in late.get(gated.headers["Location"]).text


# -- the first login ----------------------------------------------------------------------

def _first_login(app, client, clock, policy: str | None = None):
    """Enroll, verify, then (the company exists now) give it ``policy``, then the first
    login: Access Code + PIN + Word, then the credentials."""
    enroll_and_verify(app, client)
    if policy is not None:
        with app.extensions["portico"].db.transaction() as session:
            company = session.scalars(select(Company)).one()
            company.mfa_policy, company.mfa_grace_days = policy, 30
            company.mfa_policy_set_at = clock() - timedelta(days=1)
    page = client.get("/activate")
    moved = client.post("/activate", data={"csrf_token": csrf_of(page.text),
                                           "access_code": access_code(app), "pin": PIN,
                                           "verification_word": WORD})
    form = client.get(moved.headers["Location"])
    return client.post(moved.headers["Location"], data={
        "csrf_token": csrf_of(form.text), "username": "lucia.perez", "password": PASSWORD,
        "password_confirm": PASSWORD, "question_1": "first_pet", "answer_1": "Rex",
        "question_2": "birth_city", "answer_2": "Toluca", "question_3": "first_job",
        "answer_3": "Cashier"})


def test_a_first_login_under_a_requiring_policy_ends_with_enrolment(app, client, clock):
    # The grace period is for users who existed when the policy was set: not this one.
    done = _first_login(app, client, clock, "required")
    assert done.status_code == 201, done.text
    link = re.search(r'id="set-up-factor" href="([^"]+)"', done.text).group(1)
    link = link.replace("&amp;", "&")
    page = client.get(link)
    assert page.status_code == 200 and 'id="not-now"' not in page.text
    set_up_totp(client)
    onward = client.get(link)
    assert onward.status_code == 303 and onward.headers["Location"] == "/account"


def test_a_first_login_under_an_optional_policy_logs_in_as_before(app, client, clock):
    done = _first_login(app, client, clock)
    assert done.status_code == 201
    assert 'id="set-up-factor"' not in done.text and "/login" in done.text
    assert _amr(app, client) is None


def test_a_factor_added_confirms_only_with_a_fresh_code(app, client, clock):
    existing_user(app, clock, "required")
    login(client)
    assert post_security_form(client, "/account/security/totp").status_code == 303
    wrong = post_security_form(client, "/account/security/totp/confirm", code="000000")
    assert wrong.status_code == 400
    assert _amr(app, client) == ["pwd"]


def test_a_consent_posted_once_the_policy_binds_is_sent_to_the_page_without_its_token(
        app, client, clock):
    existing_user(app, clock, "required", grace_days=14)
    client_id, _ = add_client(app, first_party=False)
    login(client)
    consent = client.get("/authorize?" + urlencode(code_params(client_id)))
    assert consent.status_code == 200 and 'name="consent"' in consent.text
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">',
                             consent.text))
    fields = {k: v.replace("&amp;", "&") for k, v in fields.items()}
    clock.advance(days=14)
    gated = client.post("/authorize", data={**fields, "consent": "allow"})
    assert gated.status_code == 302 and gated.headers["Location"].startswith(PROMPT)
    assert fields["csrf_token"] not in gated.headers["Location"]
    assert "consent" not in parse_qs(urlsplit(parse_qs(urlsplit(
        gated.headers["Location"]).query)["next"][0]).query)


# -- passkeys meet the policy --------------------------------------------------------------

@pytest.fixture
def passkey_app(make_app, clock):
    """The page's app with passkeys answered from the software authenticator's origin."""
    from tests.integration.helpers.passkeys import SETTINGS

    app = wire(make_app("identity", session_cookie_secure=False, key_activation_delay=0,
                        mfa_prompt_optional=True, **SETTINGS), clock)
    settings = app.extensions["portico"].settings
    with app.extensions["portico"].db.transaction() as session:
        keys.ensure_keys(session, Fernet(settings.key_encryption_key))
    return app


def test_a_passkey_added_at_the_gate_lifts_phishing_resistant_for_this_session(
        passkey_app, clock):
    """Added with user verification in this session, the passkey proves itself here (as
    an app's first code does): /authorize then issues the code."""
    from tests.integration.helpers.passkeys import add_passkey

    app = passkey_app
    client = app.test_client()
    existing_user(app, clock, "phishing_resistant")
    client_id, _ = add_client(app)
    login(client)
    asked = "/authorize?" + urlencode(code_params(client_id))
    assert client.get(asked).headers["Location"].startswith(PROMPT)
    _, added = add_passkey(client, "Work laptop")
    assert added.status_code == 200, added.text
    assert set(_amr(app, client)) == {"pwd", "hwk", "mfa"}
    code_from(client.get(asked))


def test_a_passwordless_sign_in_goes_through_the_policy(passkey_app, clock):
    """The passkey sign-in ends where a password's does (the policy's page decides): a
    user whose passkey meets ``required`` goes straight on to ``next``."""
    from tests.integration.helpers.passkeys import add_passkey, sign_in_with_passkey

    app = passkey_app
    existing_user(app, clock, "required", grace_days=14)
    setup = app.test_client()
    login(setup)
    authenticator, added = add_passkey(setup)
    assert added.status_code == 200, added.text
    clock.advance(seconds=60)
    browser = app.test_client()
    signed_in = sign_in_with_passkey(browser, authenticator, next_url="/account")
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.get_json()["redirect"] == "/account"
    assert set(_amr(app, browser)) >= {"hwk", "mfa"}



def test_phishing_resistant_sends_an_app_sign_in_to_the_passkey_step(passkey_app, clock):
    """A user with an app and a passkey who signed in with the app's code must prove the
    passkey: the page sends them to the second step offering the passkey alone."""
    from tests.integration.helpers.factors import pass_second_step
    from tests.integration.helpers.passkeys import add_passkey

    app = passkey_app
    existing_user(app, clock, "phishing_resistant")
    setup = app.test_client()
    login(setup)
    secret, _ = set_up_totp(setup)
    add_passkey(setup)
    clock.advance(seconds=60)
    client = app.test_client()
    login(client)
    after = pass_second_step(client, "/login/second-factor?next=/account",
                             pyotp.TOTP(secret).at(clock().timestamp()), "/account")
    assert after.headers["Location"].startswith(PROMPT)
    step = client.get(after.headers["Location"])
    assert step.status_code == 303
    query = parse_qs(urlsplit(step.headers["Location"]).query)
    assert step.headers["Location"].startswith("/login/second-factor")
    assert query["method"] == ["passkey"]
    assert 'id="passkey-only"' in client.get(step.headers["Location"]).text
