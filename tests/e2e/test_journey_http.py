"""The whole journey over HTTP against the suite as real processes (issue 10, "Across
real processes"): four gunicorn services, one worker process per service, one Redis,
one database server, the SMTP sink. No call is made in process and nothing is stubbed."""

from __future__ import annotations

import pytest
import requests

from services.common.acr import MULTI_FACTOR
from tests.e2e.journey import (
    TIMEOUT,
    bearer,
    client_credentials_token,
    enroll_and_activate,
    eventually,
    oidc_login,
    read_mail,
    register_apps,
    sections,
    set_up_totp,
    tracked,
    wait_for_mail,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_enroll_activate_log_in_request_and_get_approved_over_http(start_suite):
    suite = start_suite()
    identity, permissions, tracking = (suite.url(s) for s in ("identity", "permissions",
                                                               "tracking"))
    app, console = register_apps(suite)

    # Two employees of one company enroll and activate themselves.
    ana = enroll_and_activate(identity, suite.mail_dir, "ana@example.com", "Ana")
    pat = enroll_and_activate(identity, suite.mail_dir, "pat@example.com", "Pat")

    # Ana logs in to an internal app through Portico (code + PKCE).
    ana_tokens = oidc_login(identity, app, ana.username)
    ana_access = ana_tokens["access_token"]
    assert ana_tokens["id_token"] and ana_tokens["refresh_token"]
    info = requests.get(f"{identity}/userinfo", headers=bearer(ana_access), timeout=TIMEOUT)
    assert info.status_code == 200, info.text
    assert info.json()["sub"] == ana.user_id

    # Permissions learnt about Ana from identity's events (the worker processes): a new
    # account manager's home page, without reports.
    home = eventually(lambda: sections(permissions, ana.user_id, ana_access) or None,
                      what="Ana's home page")
    assert {"cards", "tracking"} <= home and "reports" not in home

    # The help desk designates Pat as the company's principal administrator.
    ops = client_credentials_token(identity, console["client_id"], console["client_secret"],
                                   audience="permissions")
    company_id = eventually(lambda: requests.get(
        f"{permissions}/v1/users/{ana.user_id}/entitlements", headers=bearer(ops),
        timeout=TIMEOUT).json().get("company_id"), what="Ana's company in permissions")
    eventually(lambda: requests.get(f"{permissions}/v1/users/{pat.user_id}/entitlements",
                                    headers=bearer(ops), timeout=TIMEOUT).status_code == 200,
               what="Pat in permissions' read model")
    # Ana founded the company in permissions; Pat, enrolling second, waits to be admitted.
    waiting = requests.get(f"{permissions}/v1/membership-requests", headers=bearer(ops),
                           params={"view": "to_decide"}, timeout=TIMEOUT).json()["items"]
    [pats] = [item for item in waiting if item["user_id"] == pat.user_id]
    admitted = requests.post(f"{permissions}/v1/membership-requests/{pats['id']}/approve",
                             json={"comment": "Pat works here"}, headers=bearer(ops),
                             timeout=TIMEOUT)
    assert admitted.status_code == 200, admitted.text
    designated = requests.put(f"{permissions}/admin/v1/companies/{company_id}/principal",
                              json={"user_id": pat.user_id, "why": "named by the CFO"},
                              headers=bearer(ops), timeout=TIMEOUT)
    assert designated.status_code == 200, designated.text

    # Ana asks for reports.view; Pat (logged in through Portico too) approves it.
    asked = requests.post(f"{permissions}/v1/access-requests", headers=bearer(ana_access),
                          json={"entitlements": ["reports.view"],
                                "justification": "monthly spend reports"}, timeout=TIMEOUT)
    assert asked.status_code == 201, asked.text
    request_id, number = asked.json()["id"], asked.json()["tracking_number"]
    pats_browser = requests.Session()
    pat_access = oidc_login(identity, app, pat.username, browser=pats_browser)["access_token"]
    inbox = requests.get(f"{permissions}/v1/access-requests", params={"view": "to_decide"},
                         headers=bearer(pat_access), timeout=TIMEOUT)
    assert inbox.status_code == 200, inbox.text
    assert request_id in {item["id"] for item in inbox.json()["items"]}
    # Approving needs a second factor (entitlements.approve requires mfa): a password-only
    # token is refused with the level to reach; Pat sets up an authenticator app and
    # steps up through /authorize with acr_values.
    weak = requests.post(f"{permissions}/v1/access-requests/{request_id}/approve",
                         json={"comment": "granted for Q3"}, headers=bearer(pat_access),
                         timeout=TIMEOUT)
    assert weak.status_code == 403, weak.text
    assert (weak.json()["reason"], weak.json()["acr"]) == ("step_up_required", MULTI_FACTOR)
    secret = set_up_totp(identity, pats_browser)
    pat_access = oidc_login(identity, app, pat.username, browser=pats_browser,
                            totp_secret=secret, acr_values=MULTI_FACTOR)["access_token"]
    approved = requests.post(f"{permissions}/v1/access-requests/{request_id}/approve",
                             json={"comment": "granted for Q3"}, headers=bearer(pat_access),
                             timeout=TIMEOUT)
    assert approved.status_code == 200, approved.text
    assert approved.json()["status"] == "approved"

    # Tracking (built by its worker from permissions' events) shows it approved, to Ana.
    done = eventually(lambda: (tx := tracked(tracking, number, ana_access))
                      and tx["status"] == "approved" and tx, what="the request approved")
    assert done["type"] == "entitlement_request" and done["owner_user_id"] == ana.user_id
    enrollment = eventually(lambda: tracked(tracking, ana.enrollment_tracking_number, ana_access),
                            what="Ana's enrollment in tracking")
    assert enrollment["owner_user_id"] == ana.user_id
    assert len(enrollment["history"]) >= 3  # submitted, email verified, activated ...

    # The decision was emailed, and the new grant shows on the home page at once.
    wait_for_mail(suite.mail_dir, ana.email, "approved")
    assert "reports" in sections(permissions, ana.user_id, ana_access)
    # Every email the notifier sent has a Message-ID of its own.
    ids = [mail.message_id for mail in read_mail(suite.mail_dir)]
    assert len(ids) == len(set(ids))
