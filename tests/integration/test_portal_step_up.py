"""The sample portal's step-up, against real identity, permissions and tracking apps:
cancelling a card (cards.cancel requires mfa) and approving an access request
(entitlements.approve requires mfa) send a password-only session to Portico with
``acr_values``, and the action is finished on return only if the new sign-in reached the
level."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

from examples.portal import step_up
from services.common.acr import MULTI_FACTOR
from tests.integration.helpers.portal import csrf_of


def html(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def card_status(page: str, last5: str) -> str:
    return re.search(rf'id="card-{last5}" data-status="([^"]+)"', page).group(1)


def principal(suite):
    """Pat, the company's principal (program administrator: cards.cancel), signed in
    with a password alone."""
    pat = suite.add_user("pat", "Pat")
    suite.designate_principal(pat)
    return suite.sign_in("pat")


def _cancel(browser, last5="11111"):
    return _cancel_with(browser, html(browser.get("/cards")), last5)


def _cancel_with(browser, page: str, last5="11111"):
    return browser.post(f"/cards/{last5}/cancel", data={"csrf_token": csrf_of(page)})


def test_the_cards_page_lists_the_companys_cards_by_their_last_five_digits(suite):
    browser = principal(suite)
    page = html(browser.get("/cards"))
    assert card_status(page, "11111") == "active"
    assert 'id="cancel-button-11111"' in page
    assert html(browser.get("/cards?lang=es")).count("Cancelar tarjeta") == 1
    assert browser.get("/cards/cancel").headers["Location"].endswith("/cards")


def test_cancelling_a_card_steps_up_with_the_authenticator_app_and_then_succeeds(suite):
    browser = principal(suite)
    secret = suite.set_up_totp(browser)

    asked = _cancel(browser)
    assert asked.status_code == 302
    query = parse_qs(urlsplit(asked.headers["Location"]).query)
    assert query["acr_values"] == [MULTI_FACTOR]
    assert card_status(html(browser.get("/cards")), "11111") == "active"

    back = suite.follow_step_up(browser, asked, secret)
    assert back.status_code == 303 and back.headers["Location"].endswith("/cards")
    page = html(browser.get("/cards"))
    assert "Card ending 11111 cancelled." in page
    assert card_status(page, "11111") == "cancelled" and "Cancelled by Pat" in page
    # The new session is at mfa: the next sensitive action needs no second step-up.
    again = _cancel(browser)
    assert again.status_code == 303
    assert "was cancelled already" in html(browser.get("/cards"))


def test_a_step_up_that_does_not_reach_the_level_cancels_nothing(suite):
    browser = principal(suite)  # no authenticator app: identity cannot reach mfa
    asked = _cancel(browser)
    back = suite.follow_step_up(browser, asked, None)
    assert back.status_code == 303
    page = html(browser.get("/cards"))
    assert "which was not given. Nothing was done." in page
    assert card_status(page, "11111") == "active"


def test_a_pending_action_is_not_finished_for_someone_else(suite):
    browser = principal(suite)
    _cancel(browser)  # pending in the session record, server-side
    with browser.session_transaction() as cookie:
        sid = cookie["sid"]
    record = suite.portal.extensions["portal.sessions"].load(sid)
    assert record["pending"]["kind"] == "cancel_card"
    assert "pending" not in browser.get_cookie("portal_session").value
    assert step_up.carried_over(record, "someone-else") is None
    record["pending"]["at"] -= step_up.PENDING_TTL + 1
    assert step_up.carried_over(record, record["sub"]) is None


def test_someone_without_cards_cancel_is_refused_without_a_step_up(suite):
    suite.add_user("alice", "Alice")
    suite.designate_principal(suite.add_user("pat", "Pat"))
    alice = suite.sign_in("alice")
    page = html(alice.get("/cards"))
    assert 'id="no-company"' in page  # not an administrator: no list
    refused = alice.post("/cards/11111/cancel", data={"csrf_token": csrf_of(page)})
    assert refused.status_code == 303
    assert "You may not cancel the card ending 11111." in html(alice.get("/cards"))


def _approve_alices_request(suite, browser):
    """Alice asks for reports.view; the principal of ``browser`` clicks Approve."""
    alice = suite.sign_in("alice")
    page = html(alice.get("/"))
    alice.post("/access-requests", data={"entitlements": ["reports.view"],
                                         "justification": "reports", "csrf_token": csrf_of(page)})
    inbox = html(browser.get("/"))
    request_id = re.search(r'<form class="decision" id="decide-([^"]+)"', inbox).group(1)
    asked = browser.post(f"/access-requests/{request_id}/decision", data={
        "decision": "approve", "comment": "for Q3", "csrf_token": csrf_of(inbox)})
    return alice, asked


def test_approving_a_request_steps_up_and_then_succeeds(suite):
    suite.add_user("alice", "Alice")
    browser = principal(suite)
    secret = suite.set_up_totp(browser)
    alice, asked = _approve_alices_request(suite, browser)
    assert parse_qs(urlsplit(asked.headers["Location"]).query)["acr_values"] == [MULTI_FACTOR]
    assert re.search(r'id="mine-[^"]+" data-status="pending"', html(alice.get("/")))

    back = suite.follow_step_up(browser, asked, secret)
    assert back.status_code == 303
    assert re.search(r"Request PTC-[A-Z0-9-]+ approved\.", html(browser.get("/")))
    assert re.search(r'id="mine-[^"]+" data-status="approved"', html(alice.get("/")))


def test_an_approval_whose_step_up_falls_short_stays_pending(suite):
    suite.add_user("alice", "Alice")
    browser = principal(suite)  # no authenticator app
    alice, asked = _approve_alices_request(suite, browser)
    suite.follow_step_up(browser, asked, None)
    assert "Nothing was done." in html(browser.get("/"))
    assert re.search(r'id="mine-[^"]+" data-status="pending"', html(alice.get("/")))


def test_a_step_up_keeps_the_tokens_a_refresh_just_rotated(suite):
    """The pending action is saved into the session as stored, not over it: a refresh
    in the same request (an access token about to expire) must not be undone."""
    browser = principal(suite)
    with browser.session_transaction() as cookie:
        sid = cookie["sid"]
    sessions = suite.portal.extensions["portal.sessions"]
    record = sessions.load(sid)
    page = html(browser.get("/cards"))
    record["expires_at"] = 0  # the next API call refreshes first
    sessions.save(sid, record)
    assert _cancel_with(browser, page).status_code == 302
    stored = sessions.load(sid)
    assert stored["pending"]["kind"] == "cancel_card"
    assert stored["refresh_token"] != record["refresh_token"]
