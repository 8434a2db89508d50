"""Access requests: principal-only decisions, co-signature, expiry, state machine, events."""

from __future__ import annotations

from services.common import tracking_numbers
from services.common.acr import MULTI_FACTOR
from services.permissions.access_requests import expire_pending_requests
from services.permissions.models import AccessRequest, AuditEntry


def test_a_user_request_gets_a_tracking_number_and_publishes_created(company_a):
    w = company_a
    response = w.request_access("ua", ["cards.cancel"], accounts=["11111"])
    assert response.status_code == 201, response.json
    body = response.json
    assert tracking_numbers.is_valid(body["tracking_number"])
    assert body["status"] == "pending" and body["accounts"] == ["11111"]
    assert body["needs_cosign"] is False
    [event] = w.events("permissions.request.created")
    assert event["subject"] == "ua" and event["company_id"] == "co-a"
    assert event["tracking_number"] == body["tracking_number"]
    assert event["data"]["principal_admin_id"] == "pa"
    assert event["data"]["entitlements"] == ["cards.cancel"]
    assert event["data"]["requester_id"] == "ua" and event["data"]["needs_cosign"] is False


def test_only_the_principal_of_the_target_company_may_decide(company_a):
    w = company_a
    request_id = w.request_access("ua", ["cards.cancel"]).json["id"]
    # The secondary admin holds entitlements.approve through the administrator role.
    refused = {
        "secondary admin": w.decide(request_id, "approve", "sa"),
        "requester": w.decide(request_id, "approve", "ua"),
        "other company's principal": w.decide(request_id, "approve", "pb"),
        "help desk": w.decide(request_id, "approve", "hd-1"),
        "admin-scoped client": w.decide(request_id, "approve", "svc", scope="permissions.admin"),
        "token claiming the entitlement": w.decide(request_id, "approve", "ua",
                                                   entitlements=["entitlements.approve"]),
        "secondary admin rejecting": w.decide(request_id, "reject", "sa"),
    }
    for who, response in refused.items():
        assert response.status_code == 403, who
        assert response.mimetype == "application/problem+json", who
    assert w.check("ua", "cards.cancel")["allowed"] is False
    approved = w.decide(request_id, "approve", "pa", comment="fine")
    assert approved.status_code == 200, approved.json
    assert approved.json["status"] == "approved" and approved.json["decided_by"] == "pa"
    assert w.check("ua", "cards.cancel", subject_acr=MULTI_FACTOR) == {
        "allowed": True, "reason": "granted"}


def test_approving_twice_or_deciding_a_decided_request_is_409_and_changes_nothing(company_a):
    w = company_a
    request_id = w.request_access("ua", ["reports.view"]).json["id"]
    assert w.decide(request_id, "approve", "pa").status_code == 200
    before = len(w.events())
    again = w.decide(request_id, "approve", "pa")
    assert again.status_code == 409
    assert again.json["type"].endswith("/illegal-transition")
    assert w.decide(request_id, "reject", "pa").status_code == 409
    assert w.decide(request_id, "cancel", "ua").status_code == 409
    assert len(w.events()) == before
    entitlements = w.client.get("/v1/users/ua/entitlements", headers=w.headers("ua")).json
    assert [g["entitlement"] for g in entitlements["grants"]].count("reports.view") == 1


def test_a_principal_request_for_themself_needs_a_help_desk_cosignature(company_a):
    w = company_a
    created = w.request_access("pa", ["reports.export"]).json
    assert created["needs_cosign"] is True
    assert w.events("permissions.request.created")[-1]["data"]["needs_cosign"] is True
    early = w.decide(created["id"], "approve", "pa")
    assert early.status_code == 409 and early.json["type"].endswith("/cosign-required")
    assert w.decide(created["id"], "cosign", "pa").status_code == 403  # not the help desk
    assert w.decide(created["id"], "cosign", "sa").status_code == 403
    cosigned = w.decide(created["id"], "cosign", "hd-1", comment="verified by phone")
    assert cosigned.status_code == 200 and cosigned.json["status"] == "cosigned"
    [event] = w.events("permissions.request.cosigned")
    assert event["data"] == {"request_id": created["id"], "cosigned_by": "hd-1"}
    assert w.decide(created["id"], "cosign", "hd-1").status_code == 409
    assert w.decide(created["id"], "approve", "hd-1").status_code == 403  # help desk alone
    approved = w.decide(created["id"], "approve", "pa")
    assert approved.status_code == 200 and approved.json["status"] == "approved"
    grants = w.client.get("/v1/users/pa/entitlements", headers=w.headers("pa")).json["grants"]
    assert {"entitlement": "reports.export", "source": f"request:{created['id']}"} in [
        {"entitlement": g["entitlement"], "source": g["source"]} for g in grants]


def test_a_request_for_another_user_needs_an_administrator_of_their_company(company_a):
    w = company_a
    assert w.request_access("ua", ["cards.view"], target_user_id="sa").status_code == 403
    assert w.request_access("pb", ["cards.view"], target_user_id="ua").status_code == 403
    on_behalf = w.request_access("sa", ["reports.export"], target_user_id="ua")
    assert on_behalf.status_code == 201, on_behalf.json
    assert on_behalf.json["requester_id"] == "sa" and on_behalf.json["target_user_id"] == "ua"
    assert on_behalf.json["needs_cosign"] is False
    assert w.decide(on_behalf.json["id"], "approve", "pa").status_code == 200
    assert w.check("ua", "reports.export")["allowed"] is True


def test_unknown_or_disallowed_entitlements_are_422_per_field_and_nothing_changes(company_a):
    w = company_a
    restricted = w.client.put("/admin/v1/companies/co-a/program",
                              json={"allowed_entitlements": ["cards.view", "reports.view"],
                                    "why": "card-only program"}, headers=w.headers("hd-1"))
    assert restricted.status_code == 200, restricted.json
    before = len(w.events())
    response = w.request_access("ua", ["reports.view", "no.such", "cards.cancel"],
                                accounts=["99999"])
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    errors = response.json["errors"]
    assert set(errors) == {"entitlements.1", "entitlements.2", "accounts.0"}
    assert "Unknown" in errors["entitlements.1"][0]
    assert "does not allow" in errors["entitlements.2"][0]
    missing = w.client.post("/v1/access-requests", json={"entitlements": []},
                            headers=w.headers("ua"))
    assert missing.status_code == 422
    assert set(missing.json["errors"]) == {"entitlements", "justification"}
    assert len(w.events()) == before
    with w.db.read() as session:
        assert session.query(AccessRequest).count() == 0


def test_approval_is_refused_when_the_program_no_longer_allows_it(company_a):
    w = company_a
    request_id = w.request_access("ua", ["cards.cancel"]).json["id"]
    w.client.put("/admin/v1/companies/co-a/program",
                 json={"allowed_entitlements": ["cards.view"], "why": "narrowed"},
                 headers=w.headers("hd-1"))
    response = w.decide(request_id, "approve", "pa")
    assert response.status_code == 422
    assert "entitlements.0" in response.json["errors"]
    assert w.client.get(f"/v1/access-requests/{request_id}",
                        headers=w.headers("ua")).json["status"] == "pending"
    assert w.check("ua", "cards.cancel")["allowed"] is False


def test_only_the_requester_cancels(company_a):
    w = company_a
    request_id = w.request_access("ua", ["cards.view"]).json["id"]
    assert w.decide(request_id, "cancel", "pa").status_code == 403
    cancelled = w.decide(request_id, "cancel", "ua", comment="no longer needed")
    assert cancelled.status_code == 200 and cancelled.json["status"] == "cancelled"
    assert w.decide(request_id, "approve", "pa").status_code == 409
    [event] = w.events("permissions.request.cancelled")
    assert event["data"]["decided_by"] == "ua" and event["data"]["comment"] == "no longer needed"


def test_each_transition_publishes_its_event_and_is_audited(company_a):
    w = company_a
    approved = w.request_access("ua", ["cards.request"], accounts=["22222"]).json
    rejected = w.request_access("ua", ["users.manage"]).json
    w.decide(approved["id"], "approve", "pa", comment="ok")
    w.decide(rejected["id"], "reject", "pa", comment="not for your job")
    [approval] = w.events("permissions.request.approved")
    assert approval["data"] == {"request_id": approved["id"], "requester_id": "ua",
                                "target_user_id": "ua", "entitlements": ["cards.request"],
                                "decided_by": "pa", "comment": "ok"}
    assert approval["tracking_number"] == approved["tracking_number"]
    [rejection] = w.events("permissions.request.rejected")
    assert rejection["data"]["comment"] == "not for your job"
    grants = [e for e in w.events("permissions.grant.created") if e["subject"] == "ua"
              and e["data"]["entitlement"] == "cards.request"]
    assert [g["data"]["accounts"] for g in grants] == [["22222"]]
    with w.db.read() as session:
        trail = [(a.action, a.actor_id, a.why) for a in session.query(AuditEntry)
                 .filter(AuditEntry.target_id.in_([approved["id"], rejected["id"]]))
                 .order_by(AuditEntry.id)]
    assert trail == [("request.created", "ua", "needed for my job"),
                     ("request.created", "ua", "needed for my job"),
                     ("request.approved", "pa", "ok"),
                     ("request.rejected", "pa", "not for your job")]


def test_pending_requests_are_reminded_once_then_expire(company_a):
    w = company_a
    created = w.request_access("ua", ["reports.view"]).json
    settings = w.app.extensions["portico"].settings
    assert settings.request_ttl_days == 14

    def sweep():
        with w.session() as session:
            return expire_pending_requests(session, w.clock(), settings.request_reminder_days)

    assert sweep() == (0, 0)
    w.clock.advance(days=14 - settings.request_reminder_days, hours=1)
    assert sweep() == (0, 1)
    assert sweep() == (0, 0)  # the reminder goes once
    [reminder] = w.events("permissions.request.reminder")
    assert reminder["data"]["principal_admin_id"] == "pa"
    assert reminder["data"]["request_id"] == created["id"]
    w.clock.advance(days=settings.request_reminder_days)
    late = w.decide(created["id"], "approve", "pa")
    assert late.status_code == 409  # past expires_at, even before the sweep runs
    assert sweep() == (1, 0)
    assert w.events("permissions.request.expired")[0]["data"]["decided_by"] == "system"
    assert w.decide(created["id"], "approve", "pa").status_code == 409
    assert w.decide(created["id"], "cancel", "ua").status_code == 409


def test_listing_and_reading_requests(company_a):
    w = company_a
    mine = w.request_access("ua", ["cards.view"]).json
    w.request_access("pb", ["reports.view"])
    listed = w.client.get("/v1/access-requests", headers=w.headers("ua")).json["items"]
    assert [r["id"] for r in listed] == [mine["id"]]
    to_decide = w.client.get("/v1/access-requests?view=to_decide", headers=w.headers("pa"))
    assert [r["id"] for r in to_decide.json["items"]] == [mine["id"]]
    assert w.client.get(f"/v1/access-requests/{mine['id']}",
                        headers=w.headers("pb")).status_code == 404
    assert w.client.get(f"/v1/access-requests/{mine['id']}",
                        headers=w.headers("pa")).status_code == 200
    bad = w.client.get("/v1/access-requests?view=everything", headers=w.headers("ua"))
    assert bad.status_code == 422 and "view" in bad.json["errors"]
