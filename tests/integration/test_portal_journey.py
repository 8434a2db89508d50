"""The sample portal against real identity, permissions and tracking apps: sign in with
PKCE, the home page's tiles and overview, asking for an entitlement, the principal's inbox."""

from __future__ import annotations

import json
import re
import time
from urllib.parse import parse_qs, urlsplit

from tests.integration.helpers.portal import ISSUER, PORTAL, csrf_of


def html(response) -> str:
    assert response.status_code == 200, response.get_data(as_text=True)
    return response.get_data(as_text=True)


def tiles(page: str) -> list[str]:
    return re.findall(r'class="tile" id="section-[^"]+" data-key="([^"]+)"', page)


def overview_rows(page: str) -> dict[str, str]:
    return dict(re.findall(r'<tr class="transaction" id="tx-([^"]+)" data-status="([^"]+)"', page))


def session_record(suite, browser) -> tuple[str, dict]:
    with browser.session_transaction() as cookie_session:
        sid = cookie_session["sid"]
    return sid, suite.portal.extensions["portal.sessions"].load(sid)


def test_anonymous_visitors_get_a_sign_in_link_that_starts_a_pkce_code_flow(suite):
    portal = suite.portal.test_client()
    page = html(portal.get("/"))
    assert 'id="login"' in page and 'id="home-sections"' not in page

    answer = portal.get("/login?lang=es")
    assert answer.status_code == 302
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/authorize"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["client_id"] == suite.portal_client_id
    assert query["response_type"] == "code"
    assert query["redirect_uri"] == f"{PORTAL}/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"] and query["ui_locales"] == "es"
    assert set(query["scope"].split()) >= {"openid", "offline_access", "tracking.read"}
    # The PKCE verifier and nonce stay server-side: the cookie holds neither.
    cookie = answer.headers.get("Set-Cookie", "")
    assert "code_verifier" not in cookie and query["nonce"] not in cookie


def test_the_callback_keeps_the_tokens_server_side_and_home_shows_the_users_tiles(suite):
    alice = suite.add_user("alice", "Alice")
    browser = suite.sign_in("alice")

    sid, record = session_record(suite, browser)
    assert record["sub"] == alice and record["company_id"] == "co-acme"
    assert record["access_token"] and record["refresh_token"] and record["id_token"]
    cookie = browser.get_cookie("portal_session")
    assert record["access_token"] not in cookie.value and record["refresh_token"] not in cookie.value

    page = html(browser.get("/"))
    assert 'id="signed-in-as"' in page and "Alice Tester" in page
    # A new account manager's sections, as permissions computes them.
    assert set(tiles(page)) >= {"cards", "tracking"} and "reports" not in tiles(page)
    assert 'id="no-transactions"' in page
    assert 'id="entitlement-reports-view"' in page  # the catalog feeds the request form
    assert 'id="inbox"' not in page  # not a principal administrator


def test_a_request_travels_to_the_principal_who_approves_it_and_the_overview_follows(suite):
    suite.add_user("alice", "Alice")
    pat = suite.add_user("pat", "Pat")
    suite.designate_principal(pat)
    alice = suite.sign_in("alice")

    page = html(alice.get("/"))
    sent = alice.post("/access-requests", data={
        "entitlements": ["reports.view"], "justification": "monthly spend reports",
        "csrf_token": csrf_of(page)})
    assert sent.status_code == 303
    page = html(alice.get("/"))
    number = re.search(r"Request sent\. Tracking number (PTC-[A-Z0-9-]+)\.", page).group(1)
    assert re.search(r'class="access-request" id="mine-[^"]+" data-status="pending"', page)

    assert suite.relay_to_tracking() >= 1
    page = html(alice.get("/"))
    assert overview_rows(page) == {number: "submitted"}
    row = re.search(rf'<tr class="transaction" id="tx-{number}".*?</tr>', page, re.S).group(0)
    assert "entitlement_request" in row and "reports.view" in row

    principal = suite.sign_in("pat")
    secret = suite.set_up_totp(principal)  # approving asks for a second factor (step-up)
    inbox = html(principal.get("/"))
    assert 'id="inbox"' in inbox
    form = re.search(r'<form class="decision" id="decide-([^"]+)"[^>]*data-tracking-number="'
                     + number + '"', inbox)
    assert form, inbox
    request_id = form.group(1)
    asked = principal.post(f"/access-requests/{request_id}/decision", data={
        "decision": "approve", "comment": "granted for Q3", "csrf_token": csrf_of(inbox)})
    decided = suite.follow_step_up(principal, asked, secret)
    assert decided.status_code == 303
    after = html(principal.get("/"))
    assert f"Request {number} approved." in after
    assert f'id="decide-{request_id}"' not in after and 'id="inbox-empty"' in after

    suite.relay_to_tracking()
    page = html(alice.get("/"))
    assert overview_rows(page) == {number: "approved"}
    assert "reports" in tiles(page)  # the new grant shows on the home page at once


def test_a_refused_request_shows_the_services_per_field_message(suite):
    suite.add_user("alice", "Alice")
    suite.designate_principal(suite.add_user("pat", "Pat"))
    alice = suite.sign_in("alice")
    page = html(alice.get("/"))
    alice.post("/access-requests", data={"entitlements": ["no.such.thing"],
                                         "justification": "please", "csrf_token": csrf_of(page)})
    page = html(alice.get("/"))
    assert 'class="message message-error"' in page and "entitlements" in page
    assert 'id="no-requests"' in page


def test_forms_without_the_csrf_token_are_refused(suite):
    suite.add_user("alice", "Alice")
    alice = suite.sign_in("alice")
    refused = alice.post("/access-requests", data={"entitlements": ["reports.view"],
                                                   "justification": "x"})
    assert refused.status_code == 400
    assert 'id="error-title"' in refused.get_data(as_text=True)


def test_only_the_principal_decides_even_when_posting_the_form_directly(suite):
    suite.add_user("alice", "Alice")
    suite.add_user("bob", "Bob")
    suite.designate_principal(suite.add_user("pat", "Pat"))
    alice = suite.sign_in("alice")
    page = html(alice.get("/"))
    alice.post("/access-requests", data={"entitlements": ["reports.view"],
                                         "justification": "reports", "csrf_token": csrf_of(page)})
    request_id = re.search(r'id="mine-([^"]+)"', html(alice.get("/"))).group(1)

    bob = suite.sign_in("bob")
    page = html(bob.get("/"))
    bob.post(f"/access-requests/{request_id}/decision",
             data={"decision": "approve", "csrf_token": csrf_of(page)})
    page = html(bob.get("/"))
    assert 'class="message message-error"' in page
    assert re.search(r'id="mine-[^"]+" data-status="pending"', html(alice.get("/")))


def test_an_expiring_access_token_is_refreshed_with_the_rotating_refresh_token(suite):
    suite.add_user("alice", "Alice")
    browser = suite.sign_in("alice")
    sid, record = session_record(suite, browser)
    record["expires_at"] = int(time.time()) - 5
    suite.portal.extensions["portal.sessions"].save(sid, record)

    assert "cards" in tiles(html(browser.get("/")))
    _, fresh = session_record(suite, browser)
    assert fresh["access_token"] != record["access_token"]
    assert fresh["refresh_token"] != record["refresh_token"]
    assert fresh["expires_at"] > time.time()


def test_a_revoked_session_sends_the_user_back_to_sign_in(suite):
    suite.add_user("alice", "Alice")
    browser = suite.sign_in("alice")
    sid, record = session_record(suite, browser)
    record["expires_at"] = int(time.time()) - 5
    record["refresh_token"] = "not-a-refresh-token"  # noqa: S105
    suite.portal.extensions["portal.sessions"].save(sid, record)

    answer = browser.get("/")
    assert answer.status_code == 303
    page = html(browser.get("/"))
    assert "Your session has ended" in page and 'id="login"' in page
    assert suite.portal.extensions["portal.sessions"].load(sid) is None


def test_logout_forgets_the_tokens_and_ends_the_session_at_portico(suite):
    suite.add_user("alice", "Alice")
    browser = suite.sign_in("alice")
    sid, record = session_record(suite, browser)
    page = html(browser.get("/"))

    answer = browser.post("/logout", data={"csrf_token": csrf_of(page)})
    assert answer.status_code == 303
    target = urlsplit(answer.headers["Location"])
    assert f"{target.scheme}://{target.netloc}{target.path}" == f"{ISSUER}/logout"
    query = {k: v[0] for k, v in parse_qs(target.query).items()}
    assert query["post_logout_redirect_uri"] == f"{PORTAL}/"
    assert query["id_token_hint"] == record["id_token"]
    assert suite.portal.extensions["portal.sessions"].load(sid) is None
    assert 'id="login"' in html(browser.get("/"))
    # The refresh token was revoked at identity: it no longer refreshes.
    refused = suite.identity.test_client().post(
        "/token", data={"grant_type": "refresh_token", "refresh_token": record["refresh_token"]},
        auth=(suite.portal_client_id, suite.portal_client_secret))
    assert refused.status_code == 400
    assert json.loads(refused.data)["error"] == "invalid_grant"


def test_the_portals_error_pages_read_in_the_persons_language(suite):
    """werkzeug's English error names and descriptions never reach the page."""
    portal = suite.portal.test_client()
    missing = portal.get("/no-such-page?lang=es")
    assert missing.status_code == 404
    assert "Página no encontrada" in missing.text
    assert "No hay ninguna página en esta dirección." in missing.text
    assert "Not Found" not in missing.text
    expired = portal.post("/logout?lang=es", data={"csrf_token": "forged"})
    assert expired.status_code == 400
    assert "El formulario caducó; vuelva a cargar la página" in expired.text
    assert "Esta solicitud no se puede completar" in expired.text

