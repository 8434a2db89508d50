"""A company's MFA policy over JSON: the help desk reads and sets it; the company's
principal administrator (asked of permissions on each request, at the HTTP boundary)
does the same on ``/v1/companies/<id>/mfa-policy``. Every change needs a why and is
audited, tracked and published; anyone else hears 401/403/404 and learns nothing."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

from services.common import tracking_numbers
from services.identity.models import Company
from tests.integration.helpers.identity import events, problem
from tests.integration.helpers.lifecycle import add_user, audit_rows
from tests.support import give_signing_keys

PERMISSIONS = "http://127.0.0.1:8002"
WHY = "security review 2026-12, ticket 881"
REQUIRED = {"policy": "required", "grace_days": 14, "why": WHY}


@pytest.fixture
def app(lifecycle_app):
    give_signing_keys(lifecycle_app)  # identity signs the token it asks permissions with
    return lifecycle_app


def add_company(app, name: str = "Acme Cards") -> str:
    with app.extensions["portico"].db.transaction() as session:
        company = Company(name=name, country="US", tax_id_key=name.upper().replace(" ", ""))
        session.add(company)
        session.flush()
        return company.id


def person(token_issuer, user_id: str) -> dict[str, str]:
    return {"Authorization": "Bearer " + token_issuer.issue(sub=user_id, aud="identity",
                                                            scope="profile")}


def principal_is(requests_mock, company_id: str, user_id: str | None) -> list:
    """Permissions names ``user_id`` the company's principal; the requests it got."""
    requests_mock.get(f"{PERMISSIONS}/admin/v1/companies/{company_id}", json={
        "id": company_id, "name": "x", "principal_user_id": user_id,
        "secondary_administrators": [], "allowed_entitlements": None})
    return requests_mock.request_history


def test_the_help_desk_reads_the_default_and_sets_a_policy_audited_tracked_published(
        app, client, agent, clock):
    company_id = add_company(app)
    read = client.get(f"/admin/v1/companies/{company_id}/mfa-policy", headers=agent)
    assert read.status_code == 200, read.text
    assert read.get_json() == {"company_id": company_id, "policy": "optional",
                               "grace_days": 0, "set_at": None,
                               "binds_existing_users_at": None}
    assert "no-store" in read.headers["Cache-Control"]
    answer = client.put(f"/admin/v1/companies/{company_id}/mfa-policy", json=REQUIRED,
                        headers=agent)
    assert answer.status_code == 200, answer.text
    body = answer.get_json()
    tracking = body["tracking_number"]
    assert tracking_numbers.is_valid(tracking)
    assert (body["policy"], body["grace_days"]) == ("required", 14)
    assert body["binds_existing_users_at"].startswith(
        (clock() + timedelta(days=14)).date().isoformat())
    [row] = audit_rows(app, "company.mfa_policy_changed")
    assert (row["actor_type"], row["actor_id"], row["subject_id"]) == (
        "helpdesk", "agent-7", company_id)
    assert row["tracking_number"] == tracking
    assert row["detail"] == {"company_id": company_id, "policy": "required",
                             "previous_policy": "optional", "grace_days": 14,
                             "via": "helpdesk", "why": WHY}
    [event] = events(app, "identity.company.mfa_policy_changed")
    assert event.company_id == company_id and event.tracking_number == tracking
    assert event.data["policy"] == "required" and event.data["actor_id"] == "agent-7"
    assert event.data["binds_existing_users_at"]
    assert client.get(f"/admin/v1/companies/{company_id}/mfa-policy",
                      headers=agent).get_json()["policy"] == "required"


def test_the_same_policy_again_changes_only_the_grace_not_when_it_was_set(app, client, agent,
                                                                          clock):
    company_id = add_company(app)
    first = client.put(f"/admin/v1/companies/{company_id}/mfa-policy", json=REQUIRED,
                       headers=agent).get_json()
    clock.advance(days=3)
    again = client.put(f"/admin/v1/companies/{company_id}/mfa-policy",
                       json={**REQUIRED, "grace_days": 30}, headers=agent).get_json()
    assert again["set_at"] == first["set_at"] and again["grace_days"] == 30
    assert again["tracking_number"] != first["tracking_number"]
    stricter = client.put(f"/admin/v1/companies/{company_id}/mfa-policy",
                          json={**REQUIRED, "policy": "phishing_resistant"},
                          headers=agent).get_json()
    assert stricter["set_at"] > first["set_at"]


@pytest.mark.parametrize(("body", "field"), [
    ({"policy": "required", "grace_days": 3}, "why"),
    ({"policy": "required", "grace_days": 3, "why": "  "}, "why"),
    ({"policy": "sometimes", "why": WHY}, "policy"),
    ({"grace_days": 3, "why": WHY}, "policy"),
    ({"policy": "required", "grace_days": 91, "why": WHY}, "grace_days"),
    ({"policy": "required", "grace_days": -1, "why": WHY}, "grace_days"),
    ({"policy": "required", "grace_days": "soon", "why": WHY}, "grace_days"),
    ({"policy": "required", "why": WHY, "extra": 1}, "extra"),
])
def test_an_invalid_change_is_422_per_field_and_changes_nothing(app, client, agent, body,
                                                                 field):
    company_id = add_company(app)
    answer = client.put(f"/admin/v1/companies/{company_id}/mfa-policy", json=body,
                        headers=agent)
    assert answer.status_code == 422, answer.text
    assert field in problem(answer)["errors"]
    assert audit_rows(app, "company.mfa_policy_changed") == []


def test_a_body_that_is_not_an_object_is_400(app, client, agent):
    company_id = add_company(app)
    answer = client.put(f"/admin/v1/companies/{company_id}/mfa-policy", data="[]",
                        content_type="application/json", headers=agent)
    assert answer.status_code == 400 and problem(answer)["status"] == 400


def test_an_unknown_company_is_404(app, client, agent):
    for answer in (client.get("/admin/v1/companies/nope/mfa-policy", headers=agent),
                   client.put("/admin/v1/companies/nope/mfa-policy", json=REQUIRED,
                              headers=agent)):
        assert answer.status_code == 404 and problem(answer)["status"] == 404


def test_the_help_desk_api_needs_a_token_and_the_help_desk_power(app, client, token_issuer,
                                                                permissions_answers):
    company_id = add_company(app)
    user_id = add_user(app, company_id=company_id)
    path = f"/admin/v1/companies/{company_id}/mfa-policy"
    assert client.get(path).status_code == 401
    assert problem(client.put(path, json=REQUIRED))["status"] == 401
    refused = client.put(path, json=REQUIRED, headers=person(token_issuer, user_id))
    assert refused.status_code == 403 and problem(refused)["status"] == 403
    permissions_answers.grant(user_id, "platform.helpdesk")
    allowed = client.put(path, json=REQUIRED, headers=person(token_issuer, user_id))
    assert allowed.status_code == 200, allowed.text
    [row] = audit_rows(app, "company.mfa_policy_changed")
    assert row["actor_id"] == user_id


def test_the_principal_sets_their_companys_policy(app, client, token_issuer, requests_mock):
    company_id = add_company(app)
    principal = add_user(app, "pat.principal", company_id=company_id)
    asked = principal_is(requests_mock, company_id, principal)
    path = f"/v1/companies/{company_id}/mfa-policy"
    read = client.get(path, headers=person(token_issuer, principal))
    assert read.status_code == 200 and read.get_json()["policy"] == "optional"
    answer = client.put(path, json={**REQUIRED, "policy": "phishing_resistant"},
                        headers=person(token_issuer, principal))
    assert answer.status_code == 200, answer.text
    assert answer.get_json()["policy"] == "phishing_resistant"
    [row] = audit_rows(app, "company.mfa_policy_changed")
    assert (row["actor_type"], row["actor_id"], row["detail"]["via"]) == (
        "user", principal, "principal")
    [event] = events(app, "identity.company.mfa_policy_changed")
    assert event.data["via"] == "principal" and event.tracking_number == row["tracking_number"]
    # Identity asked permissions, with the service token it signs for permissions.
    calls = [r for r in asked if r.url.startswith(PERMISSIONS)]
    assert len(calls) == 2
    jwks = KeySet.import_key_set(client.get("/jwks").get_json())
    claims = jwt.decode(calls[-1].headers["Authorization"].split()[1], jwks).claims
    assert claims["aud"] == "permissions" and claims["scope"] == "permissions.read"


def test_the_principal_of_another_company_hears_404_and_learns_nothing(
        app, client, token_issuer, requests_mock):
    mine, theirs = add_company(app, "Acme Cards"), add_company(app, "Globex")
    principal = add_user(app, "pat.principal", company_id=mine)
    principal_is(requests_mock, mine, principal)
    principal_is(requests_mock, theirs, "someone-else")
    requests_mock.get(f"{PERMISSIONS}/admin/v1/companies/nope", status_code=404,
                      json={"status": 404})
    headers = person(token_issuer, principal)
    answers = [client.put(f"/v1/companies/{theirs}/mfa-policy", json=REQUIRED,
                          headers=headers),
               client.put("/v1/companies/nope/mfa-policy", json=REQUIRED, headers=headers)]
    reads = [client.get(f"/v1/companies/{theirs}/mfa-policy", headers=headers),
             client.get("/v1/companies/nope/mfa-policy", headers=headers)]
    for answer in answers + reads:
        assert answer.status_code == 404, answer.text
    # Another company's and a missing company's answers are the same (but the request id).
    bodies = [{k: v for k, v in problem(a).items() if k not in ("instance", "request_id")}
              for a in answers]
    assert bodies[0] == bodies[1]
    assert "Globex" not in answers[0].text and theirs not in json.dumps(bodies[0])
    assert audit_rows(app, "company.mfa_policy_changed") == []


def test_a_principal_in_permissions_who_is_not_a_user_of_the_company_here_is_refused(
        app, client, token_issuer, requests_mock):
    company_id, other = add_company(app, "Acme Cards"), add_company(app, "Globex")
    stranger = add_user(app, "sam.stranger", company_id=other)
    principal_is(requests_mock, company_id, stranger)
    answer = client.put(f"/v1/companies/{company_id}/mfa-policy", json=REQUIRED,
                        headers=person(token_issuer, stranger))
    assert answer.status_code == 404


def test_the_principal_api_needs_a_token_of_an_active_user(app, client, token_issuer,
                                                           requests_mock):
    company_id = add_company(app)
    path = f"/v1/companies/{company_id}/mfa-policy"
    assert client.put(path, json=REQUIRED).status_code == 401
    service = {"Authorization": "Bearer " + token_issuer.issue(
        sub="svc", client_id="svc", aud="identity", scope="iam.helpdesk")}
    assert client.put(path, json=REQUIRED, headers=service).status_code == 403


def test_permissions_down_is_503_never_a_guess(app, client, token_issuer, requests_mock):
    company_id = add_company(app)
    principal = add_user(app, "pat.principal", company_id=company_id)
    requests_mock.get(f"{PERMISSIONS}/admin/v1/companies/{company_id}", status_code=503)
    answer = client.put(f"/v1/companies/{company_id}/mfa-policy", json=REQUIRED,
                        headers=person(token_issuer, principal))
    assert answer.status_code == 503 and problem(answer)["status"] == 503
    assert audit_rows(app, "company.mfa_policy_changed") == []
