"""The help-desk API on users: search, reactivate, unlock, disable, username reminder,
access-code re-issue; each needs a why, is audited and published."""

from __future__ import annotations

import pytest

from tests.integration.helpers.enrollment import enroll_and_verify
from tests.integration.helpers.identity import events, problem, unseal
from tests.integration.helpers.lifecycle import (
    add_user,
    assert_helpdesk_action,
    audit_rows,
    login,
    user_row,
)
from tests.support import give_signing_keys

WHY = {"why": "caller verified by callback, ticket 4411"}


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


def test_requires_the_helpdesk_scope_or_the_platform_power(app, client, token_issuer,
                                                           permissions_answers):
    give_signing_keys(app)
    add_user(app)
    none = client.get("/admin/v1/users")
    assert none.status_code == 401
    plain = token_issuer.issue(sub="u1", aud="identity", scope="profile")
    assert client.get("/admin/v1/users", headers={"Authorization": f"Bearer {plain}"}
                      ).status_code == 403
    # A client token's scope is the client's power.
    machine = token_issuer.issue(sub="ops", client_id="ops", aud="identity",
                                 scope="iam.helpdesk")
    answer = client.get("/admin/v1/users", headers={"Authorization": f"Bearer {machine}"})
    assert answer.status_code == 200 and len(answer.get_json()["items"]) == 1
    # A person's claims and scopes are not: permissions' current data decides (issue 24:
    # B's users were listed by a user whose token claimed helpdesk.act).
    claimed = {"Authorization": "Bearer " + token_issuer.issue(
        sub="u2", aud="identity", scope="openid iam.helpdesk", entitlements=["helpdesk.act"])}
    assert client.get("/admin/v1/users", headers=claimed).status_code == 403
    permissions_answers.grant("u2", "platform.helpdesk")
    assert client.get("/admin/v1/users", headers=claimed).status_code == 200
    permissions_answers.revoke("u2", "platform.helpdesk")
    assert client.get("/admin/v1/users", headers=claimed).status_code == 403


def test_search_by_name_email_and_company(app, client, agent):
    ana = add_user(app, "ana.garcia", company_id="acme")
    add_user(app, "bob.stone", email="bob@globex.example", company_id="globex",
             given_name="Bob", family_name="Stone")
    by_name = client.get("/admin/v1/users", query_string={"q": "garcía"}, headers=agent)
    assert [u["id"] for u in by_name.get_json()["items"]] == [ana]
    by_email = client.get("/admin/v1/users", query_string={"email": "BOB@globex.example"},
                          headers=agent).get_json()["items"]
    assert [u["username"] for u in by_email] == ["bob.stone"]
    by_company = client.get("/admin/v1/users", query_string={"company_id": "acme"},
                            headers=agent).get_json()["items"]
    assert [u["id"] for u in by_company] == [ana]
    assert "password_hash" not in by_company[0]
    by_q = client.get("/admin/v1/users", query_string={"q": "stone"}, headers=agent)
    assert [u["username"] for u in by_q.get_json()["items"]] == ["bob.stone"]
    bad = client.get("/admin/v1/users", query_string={"status": "zombie"}, headers=agent)
    assert bad.status_code == 422 and "status" in problem(bad)["errors"]


def test_every_action_needs_a_why(app, client, agent):
    user_id = add_user(app)
    for action in ("reactivate", "unlock", "disable", "username-reminder"):
        answer = client.post(f"/admin/v1/users/{user_id}/{action}", json={}, headers=agent)
        assert answer.status_code == 422 and "why" in problem(answer)["errors"], action
    assert audit_rows(app, "helpdesk.disable") == []


def test_reactivation_after_inactivity(app, client, clock, agent):
    user_id = add_user(app, clock=clock)
    clock.advance(days=121)
    assert login(client).status_code == 403
    answer = client.post(f"/admin/v1/users/{user_id}/reactivate", json=WHY, headers=agent)
    assert answer.status_code == 200
    tracking = answer.get_json()["tracking_number"]
    assert answer.get_json()["user"]["status"] == "active"
    [reactivated] = events(app, "identity.user.reactivated")
    assert reactivated.tracking_number == tracking and reactivated.data["actor_id"] == "agent-7"
    assert_helpdesk_action(app, user_id, "reactivate", WHY["why"], tracking)
    assert login(client).status_code == 303  # the period starts again at reactivation
    again = client.post(f"/admin/v1/users/{user_id}/reactivate", json=WHY, headers=agent)
    assert again.status_code == 409


def test_unlock(app, client, agent):
    user_id = add_user(app)
    for _ in range(5):
        login(client, password="wrong-password-123")
    assert user_row(app, user_id).status.value == "locked"
    view = client.get(f"/admin/v1/users/{user_id}", headers=agent).get_json()
    assert view["status"] == "locked" and view["locked_until"]
    answer = client.post(f"/admin/v1/users/{user_id}/unlock", json=WHY, headers=agent)
    assert answer.status_code == 200 and answer.get_json()["user"]["status"] == "active"
    [unlocked] = events(app, "identity.user.unlocked")
    assert unlocked.data["actor_id"] == "agent-7"
    assert_helpdesk_action(app, user_id, "unlock", WHY["why"])
    assert login(client).status_code == 303
    assert client.post(f"/admin/v1/users/{user_id}/unlock", json=WHY,
                       headers=agent).status_code == 409


def test_disable_ends_sessions_and_login(app, client, agent, redis_client, namespace):
    user_id = add_user(app)
    assert login(client).status_code == 303
    assert client.get("/account").status_code == 200
    answer = client.post(f"/admin/v1/users/{user_id}/disable", json=WHY, headers=agent)
    assert answer.status_code == 200 and answer.get_json()["user"]["status"] == "disabled"
    assert client.get("/account").status_code == 302  # the login session is gone
    assert login(client).status_code == 401
    assert events(app, "identity.user.disabled")[0].data["actor_id"] == "agent-7"
    assert events(app, "identity.user.deactivated")[0].data["reason"] == "helpdesk"
    assert_helpdesk_action(app, user_id, "disable", WHY["why"])


def test_username_reminder_goes_sealed_to_the_address_on_file(app, client, agent):
    user_id = add_user(app, email="ana@example.com")
    answer = client.post(f"/admin/v1/users/{user_id}/username-reminder", json=WHY,
                         headers=agent)
    assert answer.status_code == 202
    [reminder] = events(app, "identity.username.reminder")
    assert reminder.data["email"] == "ana@example.com"
    assert "ana.garcia" not in reminder.to_json()
    assert unseal(app, reminder) == {"username": "ana.garcia"}
    assert_helpdesk_action(app, user_id, "username_reminder", WHY["why"])


def test_reissue_access_code_delegates_to_enrollment(app, client, agent):
    created = enroll_and_verify(app, client)
    enrollment_id = created["enrollment_id"]
    answer = client.post(f"/admin/v1/enrollments/{enrollment_id}/access-code/reissue",
                         json=WHY, headers=agent)
    assert answer.status_code == 200, answer.get_json()
    issued = events(app, "identity.access_code.issued")
    assert [e.data["reissued"] for e in issued] == [False, True]
    [row] = audit_rows(app, "helpdesk.reissue_access_code")
    assert row["detail"]["why"] == WHY["why"] and row["detail"]["enrollment_id"] == enrollment_id
    [action] = events(app, "identity.helpdesk.action")
    assert action.data["action"] == "reissue_access_code"


def test_unknown_user_is_404(app, client, agent):
    answer = client.post("/admin/v1/users/nope/unlock", json=WHY, headers=agent)
    assert answer.status_code == 404 and problem(answer)["status"] == 404


def test_disabling_and_resetting_factors_need_the_supervisor_power(app, client, token_issuer,
                                                                   permissions_answers):
    """Least privilege: an agent (platform.helpdesk) may reactivate, but taking away a
    user's means of signing in (disable, reset the factors) needs a supervisor
    (platform.helpdesk_supervisor), asked of permissions on each request."""
    give_signing_keys(app)
    user_id = add_user(app)
    person = {"Authorization": "Bearer " + token_issuer.issue(sub="u9", aud="identity",
                                                              scope="openid")}
    permissions_answers.grant("u9", "platform.helpdesk")
    for action in ("disable", "factors/reset"):
        refused = client.post(f"/admin/v1/users/{user_id}/{action}", json=WHY, headers=person)
        assert refused.status_code == 403, action
        assert "platform.helpdesk_supervisor" in problem(refused)["detail"]
    assert audit_rows(app, "helpdesk.disable") == []
    assert client.post(f"/admin/v1/users/{user_id}/username-reminder", json=WHY,
                       headers=person).status_code == 202
    permissions_answers.grant("u9", "platform.helpdesk_supervisor")
    assert client.post(f"/admin/v1/users/{user_id}/disable", json=WHY,
                       headers=person).status_code == 200
