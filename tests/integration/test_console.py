"""The help-desk console against real identity, permissions and tracking apps: it signs the
agent in with Portico's OIDC and calls identity's help-desk API with the agent's own token,
so identity (asking permissions) decides what the agent may do."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from services.common.tracking_numbers import is_valid
from services.identity.models import UserStatus
from tests.integration.fixtures.console import CONSOLE
from tests.integration.helpers.portal import ISSUER, csrf_of


def page(response, status: int = 200) -> str:
    assert response.status_code == status, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def test_signing_in_is_a_pkce_code_flow_and_the_page_has_csp_without_inline_script(console_suite):
    browser = console_suite.console.test_client()
    home = browser.get("/")
    assert 'id="login"' in page(home)
    csp = home.headers["Content-Security-Policy"]
    assert "default-src 'self'" in csp and "unsafe-inline" not in csp and "<script" not in page(home)

    answer = browser.get("/login")
    target = urlsplit(answer.headers["Location"])
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/authorize"
    assert query["client_id"] == console_suite.client_id
    assert query["redirect_uri"] == f"{CONSOLE}/callback"
    assert query["code_challenge_method"] == "S256"


def test_an_agent_finds_an_inactive_user_and_reactivates_them_with_a_reason(console_suite):
    console_suite.make_agent("agnes")
    bob = console_suite.suite.add_user("bob", "Bob")
    console_suite.set_status(bob, UserStatus.INACTIVE)
    agent = console_suite.sign_in("agnes")

    found = page(agent.get("/?q=bob"))
    assert re.search(rf'id="result-{bob}" data-status="inactive"', found)

    user = page(agent.get(f"/users/{bob}"))
    assert 'id="user-status" data-status="inactive"' in user
    assert 'id="action-reactivate"' in user and 'for="why-reactivate"' in user
    # No secret of the user on the page: only what the help-desk API shows.
    assert "password" not in user.lower().replace("email the username", "")

    empty = agent.post(f"/users/{bob}/reactivate", data={"why": " ",
                                                          "csrf_token": csrf_of(user)})
    assert 'id="why-reactivate-error"' in page(empty, 400)
    assert console_suite.status_of(bob) == "inactive"

    done = agent.post(f"/users/{bob}/reactivate", data={
        "why": "called from the office, identity checked", "csrf_token": csrf_of(user)})
    assert done.status_code == 303
    after = page(agent.get(done.headers["Location"]))
    tracking = re.search(r'id="tracking-number">([^<]+)<', after).group(1)
    assert is_valid(tracking)
    assert 'data-status="active"' in after
    assert console_suite.status_of(bob) == "active"


def test_a_person_without_the_help_desk_power_is_refused_by_identity_whatever_they_post(
        console_suite):
    console_suite.suite.add_user("mallory", "Mallory")
    bob = console_suite.suite.add_user("bob", "Bob")
    console_suite.set_status(bob, UserStatus.INACTIVE)
    mallory = console_suite.sign_in("mallory")

    assert 'id="error-message"' in page(mallory.get("/?q=bob"), 403)
    assert 'id="error-message"' in page(mallory.get(f"/users/{bob}"), 403)
    search = page(mallory.get("/"))
    forged = mallory.post(f"/users/{bob}/reactivate", data={
        "why": "forged", "csrf_token": csrf_of(search)})
    assert forged.status_code == 403
    assert console_suite.status_of(bob) == "inactive"


def test_every_form_needs_the_sessions_csrf_token(console_suite):
    console_suite.make_agent("agnes")
    bob = console_suite.suite.add_user("bob", "Bob")
    console_suite.set_status(bob, UserStatus.INACTIVE)
    agent = console_suite.sign_in("agnes")
    refused = agent.post(f"/users/{bob}/reactivate", data={"why": "no token"})
    assert refused.status_code == 400
    assert console_suite.status_of(bob) == "inactive"


def test_the_user_page_shows_lockout_and_factors_without_secrets_in_spanish(console_suite):
    console_suite.make_agent("agnes")
    bob = console_suite.suite.add_user("bob", "Bob")
    agent = console_suite.sign_in("agnes")
    user = page(agent.get(f"/users/{bob}?lang=es"))
    assert '<html lang="es">' in user and "Segundos factores" in user
    assert 'id="user-lockout"' in user and 'id="factor-totp"' in user
    assert 'id="user-days-left"' not in user  # never signed in through a login form
    assert 'id="action-username-reminder"' in user and 'id="action-reactivate"' not in user


def test_a_refused_action_shows_identitys_reason_and_a_reminder_needs_no_tracking_number(
        console_suite):
    console_suite.make_agent("agnes")
    bob = console_suite.suite.add_user("bob", "Bob")
    agent = console_suite.sign_in("agnes")
    user = page(agent.get(f"/users/{bob}"))

    # Bob is active: identity refuses a reactivation (the console did not offer it).
    refused = agent.post(f"/users/{bob}/reactivate", data={
        "why": "misclick", "csrf_token": csrf_of(user)})
    assert 'id="action-error"' in page(refused, 409)

    sent = agent.post(f"/users/{bob}/username-reminder", data={
        "why": "asked on the phone", "csrf_token": csrf_of(user)})
    assert sent.status_code == 303
    after = page(agent.get(sent.headers["Location"]))
    assert 'class="message message-done"' in after and 'id="tracking-number"' not in after
    assert agent.post(f"/users/{bob}/no-such-action", data={
        "why": "x", "csrf_token": csrf_of(user)}).status_code == 404


def test_a_supervisor_removes_a_users_factors_and_sees_the_tracking_number_never_a_secret(
        console_suite):
    console_suite.make_agent("agnes", role="helpdesk_supervisor")
    bob = console_suite.suite.add_user("bob", "Bob")
    secret = console_suite.suite.set_up_totp(console_suite.suite.sign_in("bob"))
    agent = console_suite.sign_in("agnes")

    user = page(agent.get(f"/users/{bob}"))
    assert 'id="action-reset-factors"' in user and secret not in user
    assert "none" not in re.search(r'id="factor-totp">([^<]*)<', user).group(1)
    done = agent.post(f"/users/{bob}/reset-factors", data={
        "why": "lost their phone, identity checked", "csrf_token": csrf_of(user)})
    after = page(agent.get(done.headers["Location"]))
    assert is_valid(re.search(r'id="tracking-number">([^<]+)<', after).group(1))
    assert 'id="action-reset-factors"' not in after


def test_a_user_id_that_is_no_id_is_a_404_not_another_address_at_identity(console_suite):
    console_suite.make_agent("agnes")
    agent = console_suite.sign_in("agnes")
    for odd in ("..", "x%3Fq%3Dbob", "%2E%2E", "a" * 65):
        assert 'id="error-message"' in page(agent.get(f"/users/{odd}"), 404)


def test_an_agent_is_refused_a_factor_reset_by_identity(console_suite):
    """Resetting factors needs the supervisor power: the console does not offer it to an
    agent (permissions says so, asked with the agent's token), identity refuses a forged
    POST, and the console shows identity's answer (the factor stays)."""
    console_suite.make_agent("agnes")
    bob = console_suite.suite.add_user("bob", "Bob")
    console_suite.suite.set_up_totp(console_suite.suite.sign_in("bob"))
    agent = console_suite.sign_in("agnes")
    user = page(agent.get(f"/users/{bob}"))
    assert 'id="action-reset-factors"' not in user  # not shown to an agent
    refused = agent.post(f"/users/{bob}/reset-factors", data={  # a forged POST
        "why": "lost their phone, identity checked", "csrf_token": csrf_of(user)})
    assert refused.status_code == 403
    assert "platform.helpdesk_supervisor" in refused.get_data(as_text=True)
    after = page(agent.get(f"/users/{bob}"))
    assert "none" not in re.search(r'id="factor-totp">([^<]*)<', after).group(1)


def test_a_supervisor_disables_a_user_an_agent_is_not_offered_it(console_suite):
    """Disabling takes a user's sign-in away: offered to a supervisor only, and done by
    identity (the user's status is disabled after it)."""
    console_suite.make_agent("agnes")
    console_suite.make_agent("sam", role="helpdesk_supervisor")
    bob = console_suite.suite.add_user("bob", "Bob")
    agent = console_suite.sign_in("agnes")
    assert 'id="action-disable"' not in page(agent.get(f"/users/{bob}"))
    supervisor = console_suite.sign_in("sam")
    user = page(supervisor.get(f"/users/{bob}"))
    assert 'id="action-disable"' in user
    done = supervisor.post(f"/users/{bob}/disable", data={
        "why": "left the company, HR ticket 88", "csrf_token": csrf_of(user)})
    assert done.status_code == 303
    assert console_suite.status_of(bob) == "disabled"
    assert 'id="action-disable"' not in page(supervisor.get(f"/users/{bob}"))
