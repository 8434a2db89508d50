"""Platform powers are not company entitlements (issue 24, item 1).

A company's principal once requested and approved ``helpdesk.act`` for an ordinary user,
who then acted as the help desk for every company. Platform roles now live apart: never
in the catalog, never requestable, granted only by a platform administrator with a
reason, audited, and decided from permissions' current data.
"""

from __future__ import annotations

from sqlalchemy import select

from services.permissions.models import AuditEntry

WHY = {"why": "joins the help desk team"}


def grant_role(w, user, role, by):
    return w.client.put(f"/admin/v1/platform-roles/{user}/{role}", json=WHY,
                        headers=w.headers(by))


def revoke_role(w, user, role, by):
    return w.client.delete(f"/admin/v1/platform-roles/{user}/{role}", json=WHY,
                           headers=w.headers(by))


def test_a_principal_cannot_make_anyone_help_desk(company_a):
    w = company_a
    # The attack as found: the principal asks for helpdesk.act for an ordinary user of A.
    refused = w.request_access("pa", ["helpdesk.act"], target_user_id="ua")
    assert refused.status_code == 422 and "entitlements.0" in refused.json["errors"]
    for power in ("platform.helpdesk", "platform.admin"):
        assert w.request_access("pa", [power]).status_code == 422
    # Nor can a principal put a platform power in the company's program or grant a role.
    program = w.client.put("/admin/v1/companies/co-a/program",
                           json={"allowed_entitlements": ["cards.view"], "why": "x"},
                           headers=w.headers("pa"))
    assert program.status_code == 403
    assert grant_role(w, "ua", "helpdesk_agent", by="pa").status_code == 403
    assert grant_role(w, "ua", "helpdesk_agent", by="hd-1").status_code == 403  # help desk
    # ua, therefore, is no help desk anywhere, whatever its token claims.
    claimed = w.headers("ua", entitlements=["helpdesk.act", "platform.helpdesk"],
                        scope="permissions.admin")
    assert w.client.put("/admin/v1/companies/co-b/principal",
                        json={"user_id": "pb", "why": "x"}, headers=claimed).status_code == 403
    assert w.check("ua", "platform.helpdesk") == {"allowed": False, "reason": "not_granted"}


def test_only_a_platform_administrator_grants_platform_roles_with_a_reason(company_a):
    w = company_a
    w.make_staff("root", "platform_admin")
    w.make_staff("newcomer")
    assert w.check("newcomer", "platform.helpdesk")["allowed"] is False
    missing_why = w.client.put("/admin/v1/platform-roles/newcomer/helpdesk_agent", json={},
                               headers=w.headers("root"))
    assert missing_why.status_code == 422 and "why" in missing_why.json["errors"]
    assert grant_role(w, "newcomer", "no_such_role", by="root").status_code == 422
    assert grant_role(w, "root", "helpdesk_agent", by="root").status_code == 403  # not self
    granted = grant_role(w, "newcomer", "helpdesk_agent", by="root")
    assert granted.status_code == 200, granted.json
    assert granted.json["granted_by"] == "root" and granted.json["why"] == WHY["why"]
    assert w.check("newcomer", "platform.helpdesk") == {"allowed": True, "reason": "granted"}
    assert w.check("newcomer", "platform.helpdesk_supervisor")["allowed"] is False
    [event] = w.events("permissions.platform_role.granted")[-1:]
    assert event["data"] == {"user_id": "newcomer", "role": "helpdesk_agent", "actor_id": "root"}
    with w.db.read() as session:
        [entry] = session.scalars(select(AuditEntry).where(
            AuditEntry.action == "platform_role.granted", AuditEntry.actor_id == "root")).all()
        assert entry.target_id == "newcomer" and entry.why == WHY["why"]
    listed = w.client.get("/admin/v1/platform-roles?user_id=newcomer", headers=w.headers("root"))
    assert [r["role"] for r in listed.json["items"]] == ["helpdesk_agent"]
    assert w.client.get("/admin/v1/platform-roles", headers=w.headers("ua")).status_code == 403


def test_a_revoked_platform_role_is_refused_on_the_next_request(company_a):
    w = company_a
    w.make_staff("root", "platform_admin")
    w.make_staff("agent")
    assert grant_role(w, "agent", "helpdesk_supervisor", by="root").status_code == 200
    assert w.check("agent", "platform.helpdesk")["allowed"] is True  # now cached
    assert w.designate("co-b", "pb", by="agent").status_code == 200
    assert revoke_role(w, "agent", "helpdesk_supervisor", by="agent").status_code == 403
    assert revoke_role(w, "agent", "helpdesk_supervisor", by="root").status_code == 204
    assert w.check("agent", "platform.helpdesk")["allowed"] is False
    assert w.designate("co-b", "pb", by="agent").status_code == 403
    assert revoke_role(w, "agent", "helpdesk_supervisor", by="root").status_code == 404
    [event] = w.events("permissions.platform_role.revoked")
    assert event["data"]["user_id"] == "agent"


def test_a_help_desk_agent_is_not_a_supervisor(company_a):
    w = company_a
    w.make_helpdesk("agent-7", role="helpdesk_agent")
    assert w.designate("co-b", "pb", by="agent-7").status_code == 403
    assert w.client.put("/admin/v1/companies/co-a/program",
                        json={"allowed_entitlements": None, "why": "x"},
                        headers=w.headers("agent-7")).status_code == 403
    assert w.client.get("/admin/v1/companies/co-b", headers=w.headers("agent-7")).status_code == 200


def test_a_deactivated_holder_loses_the_platform_power(company_a):
    w = company_a
    assert w.check("hd-1", "platform.helpdesk")["allowed"] is True
    w.deliver("identity.user.deactivated", {"user_id": "hd-1", "reason": "inactivity"})
    assert w.check("hd-1", "platform.helpdesk") == {"allowed": False,
                                                     "reason": "subject_inactive"}
    assert w.designate("co-b", "pb").status_code == 403


def test_platform_staff_hold_no_company_entitlement(world):
    world.make_staff("staff", "helpdesk_supervisor")
    assert world.check("staff", "cards.view")["allowed"] is False
    assert world.check("staff", "platform.helpdesk_supervisor")["allowed"] is True
    response = world.request_access("staff", ["cards.view"])
    assert response.status_code in (403, 422)
