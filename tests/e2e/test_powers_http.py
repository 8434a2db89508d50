"""Platform powers across real processes (issue 24): the bootstrap help-desk administrator
holds the help-desk power in permissions from the first start; tracking asks permissions
(with the services' client that ``make run`` registers) rather than trusting the token;
a revoked power is refused on the next request; an ordinary employee sees only their own."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import requests

from tests.e2e.journey import (
    TIMEOUT,
    bearer,
    enroll_and_activate,
    eventually,
    oidc_login,
    register_apps,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def look_up(tracking: str, number: str, token: str) -> int:
    return requests.get(f"{tracking}/v1/transactions/{number}", headers=bearer(token),
                        timeout=TIMEOUT).status_code


def test_help_desk_power_comes_from_permissions_and_is_revoked_at_once(start_suite):
    suite = start_suite()
    identity, tracking = suite.url("identity"), suite.url("tracking")
    boot = suite.bootstrap()
    app, _ = register_apps(suite)

    ana = enroll_and_activate(identity, suite.mail_dir, "ana@example.com", "Ana")
    pat = enroll_and_activate(identity, suite.mail_dir, "pat@example.com", "Pat",
                              tax_id="98-7654321")
    ana_access = oidc_login(identity, app, ana.username)["access_token"]
    eventually(lambda: look_up(tracking, ana.enrollment_tracking_number, ana_access) == 200,
               what="Ana's enrollment in tracking")

    # An ordinary employee of another company is told it does not exist.
    pat_access = oidc_login(identity, app, pat.username)["access_token"]
    assert look_up(tracking, ana.enrollment_tracking_number, pat_access) == 404

    # The bootstrap administrator signs in like anyone; permissions says help desk.
    staff = boot["administrator"]
    staff_access = oidc_login(identity, app, staff["username"],
                              password=staff["password"])["access_token"]
    eventually(lambda: look_up(tracking, ana.enrollment_tracking_number, staff_access) == 200,
               what="the help desk reading Ana's enrollment")

    # The operator takes the help-desk roles away: the same token is refused at once.
    iamctl = os.path.join(os.path.dirname(sys.executable), "iamctl")
    done = subprocess.run([iamctl, "platform", "revoke", staff["id"], "helpdesk_supervisor",
                           "--why", "left the team"], env=suite.env, capture_output=True,
                          text=True, check=False, timeout=60)
    assert done.returncode == 0, done.stderr
    assert look_up(tracking, ana.enrollment_tracking_number, staff_access) == 404
