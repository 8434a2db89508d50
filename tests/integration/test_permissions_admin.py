"""Principal administrators, the help desk, entitlements for identity, the OpenAPI
document and problem+json errors."""

from __future__ import annotations

from services.permissions.models import AuditEntry


def entitlement_keys(w, user):
    response = w.client.get(f"/v1/users/{user}/entitlements",
                            headers=w.service_headers("permissions.read"))
    assert response.status_code == 200, response.json
    return set(response.json["entitlements"])


def test_the_help_desk_designates_and_transfers_the_one_principal(company_a):
    w = company_a
    assert "entitlements.approve" in entitlement_keys(w, "pa")
    [first] = [e for e in w.events("permissions.principal.changed") if e["company_id"] == "co-a"]
    assert first["data"] == {"company_id": "co-a", "old_principal_id": None,
                             "new_principal_id": "pa", "actor_id": "hd-1"}
    transfer = w.client.put("/admin/v1/companies/co-a/principal",
                            json={"user_id": "ua", "why": "pa retired"},
                            headers=w.service_headers("permissions.admin"))
    assert transfer.status_code == 200, transfer.json
    assert transfer.json["principal_user_id"] == "ua"
    assert transfer.json["secondary_administrators"] == ["sa"]
    assert "entitlements.approve" in entitlement_keys(w, "ua")
    assert "entitlements.approve" not in entitlement_keys(w, "pa")
    assert w.check("pa", "users.manage")["allowed"] is False
    changed = w.events("permissions.principal.changed")[-1]
    assert changed["subject"] == "ua"
    assert changed["data"] == {"company_id": "co-a", "old_principal_id": "pa",
                               "new_principal_id": "ua", "actor_id": "svc-client"}
    with w.db.read() as session:
        entry = (session.query(AuditEntry).filter_by(action="principal.changed",
                                                     target_id="co-a")
                 .order_by(AuditEntry.id.desc()).first())
        assert (entry.actor_id, entry.why) == ("svc-client", "pa retired")
    # Requests now go to the new principal, who alone decides.
    request_id = w.request_access("sa", ["reports.view"]).json["id"]
    assert w.events("permissions.request.created")[-1]["data"]["principal_admin_id"] == "ua"
    assert w.decide(request_id, "approve", "pa").status_code == 403
    assert w.decide(request_id, "approve", "ua").status_code == 200


def test_only_the_help_desk_designates_and_only_an_active_member(company_a):
    w = company_a
    for who in ("pa", "sa", "ua"):
        assert w.designate("co-a", "ua", by=who).status_code == 403, who
    # The token's own entitlements claim is not trusted: permissions' data decides.
    claimed = w.client.put("/admin/v1/companies/co-a/principal",
                           json={"user_id": "ua", "why": "x"},
                           headers=w.headers("ua", entitlements=["helpdesk.act"]))
    assert claimed.status_code == 403
    other = w.designate("co-a", "pb")
    assert other.status_code == 422 and "user_id" in other.json["errors"]
    w.deliver("identity.user.deactivated", {"user_id": "ua", "reason": "helpdesk"})
    assert w.designate("co-a", "ua").status_code == 422
    assert w.designate("co-nope", "ua").status_code == 404
    missing = w.client.put("/admin/v1/companies/co-a/principal", json={"user_id": "ua"},
                           headers=w.headers("hd-1"))
    assert missing.status_code == 422 and missing.json["errors"] == {
        "why": ["Missing data for required field."]}


def test_a_company_without_a_principal_cannot_take_requests(world):
    world.activate("lonely", "co-z")
    response = world.request_access("lonely", ["reports.view"])
    assert response.status_code == 409 and response.json["type"].endswith("/no-principal")


def test_entitlements_for_identity_list_grants_with_account_limits(company_a):
    w = company_a
    created = w.request_access("ua", ["cards.cancel", "transactions.track"], accounts=["11111"])
    assert w.decide(created.json["id"], "approve", "pa").status_code == 200
    response = w.client.get("/v1/users/ua/entitlements",
                            headers=w.service_headers("permissions.read"))
    grants = {(g["entitlement"], g["source"].split(":")[0]): g["accounts"]
              for g in response.json["grants"]}
    assert grants[("cards.cancel", "request")] == ["11111"]
    assert grants[("transactions.track", "request")] is None  # not account-scopable
    assert w.client.get("/v1/users/ua/entitlements",
                        headers=w.headers("pb")).status_code == 404
    assert w.client.get("/v1/users/ua/entitlements",
                        headers=w.headers("sa")).status_code == 200
    assert w.client.get("/v1/users/ghost/entitlements",
                        headers=w.service_headers("permissions.read")).status_code == 404


def test_openapi_document_and_problem_errors_survive_flask_smorest(world):
    document = world.client.get("/openapi.json")
    assert document.status_code == 200
    spec = document.json
    assert spec["openapi"] == "3.0.3"
    for path in ("/v1/check", "/v1/check/batch", "/v1/access-requests",
                 "/v1/access-requests/{request_id}/approve", "/v1/users/{user_id}/home",
                 "/v1/users/{user_id}/entitlements", "/admin/v1/companies/{company_id}/principal",
                 "/admin/v1/grants/{grant_id}"):
        assert path in spec["paths"], path
    assert {"Check", "CheckResult", "AccessRequestCreate"} <= set(spec["components"]["schemas"])
    headers = world.headers("hd-1")
    not_found = world.client.get("/v1/nothing-here", headers=headers)
    assert not_found.status_code == 404 and not_found.mimetype == "application/problem+json"
    wrong_method = world.client.delete("/v1/check", headers=headers)
    assert wrong_method.status_code == 405
    assert wrong_method.mimetype == "application/problem+json"
    bad_json = world.client.post("/v1/check", data="{nope", content_type="application/json",
                                 headers=world.service_headers("permissions.check"))
    assert bad_json.status_code == 400 and bad_json.mimetype == "application/problem+json"
    invalid = world.client.post("/v1/check", json={"subject": "", "extra": 1,
                                                   "resource": {"account_last5": "12"}},
                                headers=world.service_headers("permissions.check"))
    assert invalid.status_code == 422 and invalid.mimetype == "application/problem+json"
    assert set(invalid.json["errors"]) == {"subject", "action", "extra",
                                           "resource.account_last5"}
    not_object = world.client.post("/v1/check", json=[1, 2],
                                   headers=world.service_headers("permissions.check"))
    assert not_object.status_code == 422


def test_the_catalog_is_seeded_by_the_migration(world):
    response = world.client.get("/v1/entitlements", headers=world.headers("anyone"))
    catalog = {e["key"]: e for e in response.json["items"]}
    assert {"cards.view", "cards.cancel", "cards.request", "transactions.track", "reports.view",
            "reports.export", "contacts.update", "users.view", "users.manage",
            "entitlements.request", "entitlements.approve",
            "transactions.track_company"} <= set(catalog)
    # Platform powers are never company entitlements.
    assert not any(key.startswith(("helpdesk", "platform")) for key in catalog)
    assert catalog["cards.cancel"]["account_scopable"] is True
    assert catalog["users.manage"]["description_es"]


def test_a_trusted_service_reads_who_the_principal_is_and_nobody_else_does(company_a):
    """Identity asks who a company's principal is (before a principal changes the company's
    MFA policy) with its permissions.read token; a mere checker, or a member, learns nothing."""
    w = company_a
    read = w.client.get("/admin/v1/companies/co-a", headers=w.service_headers("permissions.read"))
    assert read.status_code == 200, read.json
    assert read.json["principal_user_id"] == "pa"
    checker = w.client.get("/admin/v1/companies/co-a",
                           headers=w.service_headers("permissions.check"))
    assert checker.status_code == 404
    # A person's token carrying the scope is not a trusted service.
    member = w.client.get("/admin/v1/companies/co-a",
                          headers=w.headers("ua", scope="permissions.read"))
    assert member.status_code == 404
    missing = w.client.get("/admin/v1/companies/nope",
                           headers=w.service_headers("permissions.read"))
    assert missing.status_code == 404
