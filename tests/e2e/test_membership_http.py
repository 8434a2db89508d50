"""Issue 24, item 2, as the outside tester tried it: a stranger enrolls with company A's
tax id, another company name and an account number of their own, and activates. Over
HTTP against the suite as real processes: they get nothing of A until A's principal
approves, and A's overview never lists their enrollment."""

from __future__ import annotations

import pytest
import requests

from tests.e2e.journey import (
    TIMEOUT,
    bearer,
    client_credentials_token,
    enroll_and_activate,
    eventually,
    oidc_login,
    register_apps,
    sections,
    tracked,
    wait_for_mail,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def test_a_stranger_with_a_companys_tax_id_waits_for_its_principal(start_suite):
    suite = start_suite()
    identity, permissions, tracking = (suite.url(s) for s in ("identity", "permissions",
                                                               "tracking"))
    app, console = register_apps(suite)
    ops = client_credentials_token(identity, console["client_id"], console["client_secret"],
                                   audience="permissions")

    # Ana founds company A; the help desk makes her its principal administrator.
    ana = enroll_and_activate(identity, suite.mail_dir, "ana@example.com", "Ana")
    company_id = eventually(lambda: requests.get(
        f"{permissions}/v1/users/{ana.user_id}/entitlements", headers=bearer(ops),
        timeout=TIMEOUT).json().get("company_id"), what="Ana in permissions")
    assert requests.put(f"{permissions}/admin/v1/companies/{company_id}/principal",
                        json={"user_id": ana.user_id, "why": "named by the CFO"},
                        headers=bearer(ops), timeout=TIMEOUT).status_code == 200

    # Eve types A's tax id, her own company name and account number, and activates.
    eve = enroll_and_activate(identity, suite.mail_dir, "eve@example.com", "Eve",
                              company="Eve Shell Co", account="371449635398431")
    wait_for_mail(suite.mail_dir, ana.email, "A newcomer asks to join your company")
    eve_access = oidc_login(identity, app, eve.username)["access_token"]
    [request] = eventually(lambda: requests.get(
        f"{permissions}/v1/membership-requests", params={"view": "mine"},
        headers=bearer(eve_access), timeout=TIMEOUT).json()["items"],
        what="Eve's membership request")
    assert request["status"] == "pending" and request["accounts"] == ["98431"]
    assert sections(permissions, eve.user_id, eve_access) == set()
    company = requests.get(f"{permissions}/admin/v1/companies/{company_id}",
                           headers=bearer(ops), timeout=TIMEOUT).json()
    assert company["name"] == "Acme Travel Inc."
    assert requests.get(f"{permissions}/admin/v1/companies/{company_id}",
                        headers=bearer(eve_access), timeout=TIMEOUT).status_code == 404
    assert requests.get(f"{tracking}/v1/transactions", params={"scope": "company"},
                        headers=bearer(eve_access), timeout=TIMEOUT).status_code == 403

    # Eve's enrollment and request are hers in tracking, and not in A's overview.
    for number in (eve.enrollment_tracking_number, request["tracking_number"]):
        eventually(lambda number=number: tracked(tracking, number, eve_access),
                   what=f"{number} in tracking")
    ana_access = oidc_login(identity, app, ana.username)["access_token"]
    overview = requests.get(f"{tracking}/v1/transactions", headers=bearer(ana_access),
                            params={"scope": "company", "limit": 100}, timeout=TIMEOUT)
    assert overview.status_code == 200, overview.text
    listed = {item["tracking_number"] for item in overview.json()["items"]}
    assert ana.enrollment_tracking_number not in listed  # enrollments are nobody's company's
    assert not listed & {eve.enrollment_tracking_number, request["tracking_number"]}
    assert tracked(tracking, eve.enrollment_tracking_number, ana_access) is None

    # Ana approves: Eve is an account manager of A, and her account is A's.
    approved = requests.post(f"{permissions}/v1/membership-requests/{request['id']}/approve",
                             json={"comment": "Eve joined accounts payable"},
                             headers=bearer(ana_access), timeout=TIMEOUT)
    assert approved.status_code == 200, approved.text
    assert {"cards", "tracking"} <= sections(permissions, eve.user_id, eve_access)
    wait_for_mail(suite.mail_dir, eve.email, "Your company membership was approved")
    done = eventually(lambda: (tx := tracked(tracking, request["tracking_number"], eve_access))
                      and tx["status"] == "approved" and tx, what="the request approved")
    assert done["type"] == "membership" and done["owner_user_id"] == eve.user_id
