"""Step-up for sensitive entitlements: the catalog's ``required_acr`` (cards.cancel and
entitlements.approve: mfa), ``POST /v1/check`` answering ``step_up_required`` with the
level when the token's ``acr`` is too low (the caller's own token, or a ``subject_token`` a
service forwards, verified), the fast path answering as the views do, and approving an
access request refused below the level."""

from __future__ import annotations

import pytest

from services.common.acr import MULTI_FACTOR, PHISHING_RESISTANT, SINGLE_FACTOR
from services.common.auth import revoke_client, revoke_jti
from tests.integration.helpers.permissions import World
from tests.support import watch_flask
from tests.tokens import TokenIssuer

STEP_UP = {"allowed": False, "reason": "step_up_required", "acr": MULTI_FACTOR}
GRANTED = {"allowed": True, "reason": "granted"}


def _as_user(w: World, subject: str, action: str, acr: str | None, **resource):
    claims = {} if acr is None else {"acr": acr}
    body = {"subject": subject, "action": action, **({"resource": resource} if resource else {})}
    response = w.client.post("/v1/check", json=body, headers=w.headers(subject, **claims))
    assert response.status_code == 200, response.json
    return response.json


def _as_service(w: World, body: dict, client=None):
    response = (client or w.client).post("/v1/check", json=body,
                                         headers=w.service_headers("permissions.check"))
    assert response.status_code == 200, response.json
    return response.json


def test_the_catalog_says_which_entitlements_require_a_level(company_a):
    w = company_a
    items = w.client.get("/v1/entitlements", headers=w.headers("ua")).json["items"]
    levels = {item["key"]: item["required_acr"] for item in items}
    assert levels["cards.cancel"] == levels["entitlements.approve"] == MULTI_FACTOR
    assert {k for k, v in levels.items() if v} == {"cards.cancel", "entitlements.approve"}


@pytest.mark.parametrize(("acr", "expected"), [
    (None, STEP_UP), (SINGLE_FACTOR, STEP_UP), ("urn:portico:acr:password", STEP_UP),
    ("urn:example:made-up", STEP_UP), (MULTI_FACTOR, GRANTED), (PHISHING_RESISTANT, GRANTED),
], ids=["no acr", "lower", "legacy pwd", "unknown value", "equal", "higher"])
def test_a_user_asking_about_themself_is_judged_by_their_tokens_acr(company_a, acr, expected):
    w = company_a
    assert _as_user(w, "pa", "cards.cancel", acr) == expected
    assert _as_user(w, "pa", "cards.cancel", acr, account_last5="11111") == expected
    # An entitlement without a level is not affected by it.
    assert _as_user(w, "pa", "cards.view", acr) == GRANTED


def test_step_up_is_only_for_what_would_otherwise_be_granted(company_a):
    w = company_a
    # ua does not hold cards.cancel: not_granted whatever the level, never a step-up hint.
    assert _as_user(w, "ua", "cards.cancel", SINGLE_FACTOR) == {"allowed": False,
                                                                "reason": "not_granted"}
    assert _as_user(w, "pa", "cards.cancel", SINGLE_FACTOR, company_id="co-b") == {
        "allowed": False, "reason": "other_company"}
    assert _as_user(w, "pa", "cards.cancel", SINGLE_FACTOR, account_last5="99999") == {
        "allowed": False, "reason": "unknown_account"}


def test_a_service_without_the_users_token_gets_step_up_required(company_a):
    w = company_a
    assert _as_service(w, {"subject": "pa", "action": "cards.cancel"}) == STEP_UP
    assert _as_service(w, {"subject": "pa", "action": "cards.view"}) == GRANTED


@pytest.mark.parametrize(("acr", "expected"), [
    (SINGLE_FACTOR, STEP_UP), (MULTI_FACTOR, GRANTED), (PHISHING_RESISTANT, GRANTED)])
def test_a_service_forwarding_the_users_token_is_judged_by_its_acr(company_a, acr, expected):
    w = company_a
    body = {"subject": "pa", "action": "cards.cancel", "subject_token": w.subject_token("pa", acr)}
    assert _as_service(w, body) == expected


def test_a_subject_token_counts_only_if_portico_signed_it_for_that_subject(company_a):
    w = company_a
    forged = TokenIssuer().issue(sub="pa", aud="permissions", acr=MULTI_FACTOR)
    unusable = {
        "another user's": w.subject_token("sa"),
        "another issuer's keys": forged,
        "expired": w.subject_token("pa", lifetime=-120),
        "for another audience": w.issuer.issue(sub="pa", aud="tracking", acr=MULTI_FACTOR),
        "an ID token": w.issuer.issue(sub="pa", aud="permissions", acr=MULTI_FACTOR, typ="JWT"),
        "a client's token": w.issuer.issue(sub="pa", client_id="pa", aud="permissions",
                                           acr=MULTI_FACTOR),
        "not a JWT": "not-a-token",
    }
    for name, token in unusable.items():
        body = {"subject": "pa", "action": "cards.cancel", "subject_token": token}
        assert _as_service(w, body) == STEP_UP, name


def test_a_revoked_subject_token_counts_for_nothing(company_a, redis_client, namespace):
    w = company_a
    by_jti = w.subject_token("pa", jti="jti-subject")
    by_client = w.subject_token("pa", client_id="deleted-portal")
    for token in (by_jti, by_client):
        assert _as_service(w, {"subject": "pa", "action": "cards.cancel",
                               "subject_token": token}) == GRANTED
    revoke_jti(redis_client, namespace, "jti-subject", 60)
    revoke_client(redis_client, namespace, "deleted-portal", 60)
    for token in (by_jti, by_client):
        assert _as_service(w, {"subject": "pa", "action": "cards.cancel",
                               "subject_token": token}) == STEP_UP


def test_a_batch_judges_each_check_by_its_own_subjects_level(company_a):
    w = company_a
    checks = [{"subject": "pa", "action": "cards.cancel", "subject_token": w.subject_token("pa")},
              {"subject": "pa", "action": "cards.cancel"},
              {"subject": "pa", "action": "entitlements.approve",
               "subject_token": w.subject_token("pa", SINGLE_FACTOR)},
              {"subject": "ua", "action": "cards.view"}]
    response = w.client.post("/v1/check/batch", json={"checks": checks},
                             headers=w.service_headers("permissions.check"))
    assert response.json["results"] == [GRANTED, STEP_UP, STEP_UP, GRANTED]


def test_the_fast_path_answers_step_up_as_the_views_do(company_a):
    w = company_a
    flask_calls, flask_only = watch_flask(w.app)
    served = w.app.test_client()
    service = w.service_headers("permissions.check")
    cases = [
        ({"subject": "pa", "action": "cards.cancel"}, service),
        ({"subject": "pa", "action": "cards.cancel", "subject_token": w.subject_token("pa")},
         service),
        ({"subject": "pa", "action": "cards.cancel",
          "subject_token": w.subject_token("pa", SINGLE_FACTOR)}, service),
        ({"subject": "pa", "action": "cards.cancel", "subject_token": w.subject_token("sa")},
         service),
        ({"subject": "pa", "action": "cards.cancel", "subject_token": ""}, service),
        ({"subject": "pa", "action": "cards.cancel"}, w.headers("pa", acr=MULTI_FACTOR)),
        ({"subject": "pa", "action": "cards.cancel"}, w.headers("pa", acr=SINGLE_FACTOR)),
        ({"subject": "pa", "action": "cards.cancel"}, w.headers("pa")),
    ]
    for body, headers in cases:
        for path, payload in (("/v1/check", body), ("/v1/check/batch", {"checks": [body]})):
            fast, view = [client.post(path, json=payload,
                                      headers={**headers, "X-Request-ID": "step-up"})
                          for client in (served, flask_only)]
            assert (fast.status, fast.get_data()) == (view.status, view.get_data()), (path, body)
    flask_calls.clear()
    for body, headers in cases[:3]:  # warm and well-formed: never enters Flask
        assert served.post("/v1/check", json=body, headers=headers).status_code == 200
    assert flask_calls == []


def test_approving_an_access_request_needs_the_level_of_entitlements_approve(company_a):
    w = company_a
    request_id = w.request_access("ua", ["reports.view"]).json["id"]
    for acr in (SINGLE_FACTOR, None):
        claims = {"acr": acr} if acr else {}
        refused = w.client.post(f"/v1/access-requests/{request_id}/approve",
                                json={"comment": "ok"}, headers=w.headers("pa", **claims))
        assert refused.status_code == 403
        assert refused.mimetype == "application/problem+json"
        assert refused.json["reason"] == "step_up_required"
        assert refused.json["acr"] == MULTI_FACTOR
        assert refused.json["type"].endswith("step-up-required")
    got = w.client.get(f"/v1/access-requests/{request_id}", headers=w.headers("ua")).json
    assert got["status"] == "pending" and w.events("permissions.request.approved") == []
    # Rejecting needs no step-up; approving at the level works.
    assert w.decide(request_id, "approve", "pa", acr=MULTI_FACTOR).status_code == 200
    assert _as_user(w, "ua", "reports.view", None) == GRANTED


def test_a_non_principal_hears_not_principal_before_any_step_up(company_a):
    w = company_a
    request_id = w.request_access("ua", ["reports.view"]).json["id"]
    refused = w.decide(request_id, "approve", "sa", acr=SINGLE_FACTOR)
    assert refused.status_code == 403 and "reason" not in refused.json
