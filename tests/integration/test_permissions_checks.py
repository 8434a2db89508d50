"""POST /v1/check: account scoping, batch, caller rules, and cache invalidation that
reaches every replica on the very next check."""

from __future__ import annotations

import pytest

from services.common.acr import MULTI_FACTOR as MFA
from services.common.events import Envelope
from tests.integration.helpers.permissions import World, cut_off_from_redis
from tests.support import CountingRedis


def approve(w: World, user: str, keys: list[str], **body) -> None:
    created = w.request_access(user, keys, **body)
    assert created.status_code == 201, created.json
    assert w.decide(created.json["id"], "approve", "pa").status_code == 200


def test_grants_limited_to_accounts_allow_only_those_accounts(company_a):
    w = company_a
    approve(w, "ua", ["cards.cancel"], accounts=["11111"])

    def cancel(resource=None):  # cards.cancel requires mfa: the user's mfa token is forwarded
        return w.check("ua", "cards.cancel", resource, subject_acr=MFA)

    assert cancel({"account_last5": "11111"})["allowed"] is True
    assert cancel({"account_fingerprint": "fp-aaaa-1"})["allowed"] is True
    assert cancel({"account_last5": "22222"}) == {"allowed": False,
                                                 "reason": "account_not_granted"}
    assert cancel({"account_last5": "33333"}) == {
        "allowed": False, "reason": "unknown_account"}  # company B's account
    assert cancel({"account_fingerprint": "fp-aaaa-1", "account_last5": "22222"})[
        "allowed"] is False
    assert cancel() == {"allowed": True, "reason": "granted"}
    assert cancel({"company_id": "co-b"}) == {"allowed": False, "reason": "other_company"}
    # The role's cards.view is not limited: any account of the company.
    assert w.check("ua", "cards.view", {"account_last5": "22222",
                                        "company_id": "co-a"})["allowed"] is True


def test_reasons_for_unknown_and_ungranted(company_a):
    w = company_a
    assert w.check("nobody", "cards.view") == {"allowed": False, "reason": "unknown_subject"}
    assert w.check("ua", "users.manage") == {"allowed": False, "reason": "not_granted"}
    assert w.check("ua", "no.such.thing") == {"allowed": False, "reason": "not_granted"}


def test_batch_answers_in_order_and_is_bounded(company_a):
    w = company_a
    checks = [{"subject": "ua", "action": "cards.view"},
              {"subject": "pa", "action": "entitlements.approve",
               "subject_token": w.subject_token("pa")},
              {"subject": "ua", "action": "entitlements.approve"},
              {"subject": "ghost", "action": "cards.view"}]
    response = w.client.post("/v1/check/batch", json={"checks": checks},
                             headers=w.service_headers("permissions.check"))
    assert response.status_code == 200, response.json
    assert [r["allowed"] for r in response.json["results"]] == [True, True, False, False]
    too_many = w.client.post("/v1/check/batch", json={"checks": checks * 26},
                             headers=w.service_headers("permissions.check"))
    assert too_many.status_code == 422 and "checks" in too_many.json["errors"]


def test_a_user_may_check_only_themself(company_a):
    w = company_a
    own = w.client.post("/v1/check", json={"subject": "ua", "action": "cards.view"},
                        headers=w.headers("ua"))
    assert own.status_code == 200 and own.json["allowed"] is True
    other = w.client.post("/v1/check", json={"subject": "pa", "action": "cards.view"},
                          headers=w.headers("ua"))
    assert other.status_code == 403 and other.mimetype == "application/problem+json"
    anonymous = w.client.post("/v1/check", json={"subject": "ua", "action": "cards.view"})
    assert anonymous.status_code == 401


def test_revoking_through_one_replica_is_denied_by_another_on_the_next_check(
        make_app, permissions_url, token_issuer, company_a):
    w = company_a
    approve(w, "ua", ["reports.export"])
    replica = make_app("permissions", database_url=permissions_url).test_client()
    for _ in range(3):  # warm the replica's in-process cache
        assert w.check("ua", "reports.export", client=replica)["allowed"] is True
    grants = w.client.get("/v1/users/ua/entitlements", headers=w.headers("ua")).json["grants"]
    [grant] = [g for g in grants if g["entitlement"] == "reports.export"]
    revoked = w.client.delete(f"/admin/v1/grants/{grant['id']}", json={"why": "left the team"},
                              headers=w.headers("pa"))
    assert revoked.status_code == 204
    assert w.check("ua", "reports.export", client=replica) == {
        "allowed": False, "reason": "not_granted"}
    [event] = w.events("permissions.grant.revoked")
    assert event["data"] == {"user_id": "ua", "entitlement": "reports.export", "accounts": None}
    # Only the help desk or the company's principal revokes; a second revoke is 404.
    assert w.client.delete(f"/admin/v1/grants/{grant['id']}", json={},
                           headers=w.headers("pa")).status_code == 404


def test_only_principal_or_help_desk_revoke(company_a):
    w = company_a
    grants = w.client.get("/v1/users/ua/entitlements", headers=w.headers("ua")).json["grants"]
    for who in ("ua", "sa", "pb"):
        response = w.client.delete(f"/admin/v1/grants/{grants[0]['id']}", json={},
                                   headers=w.headers(who))
        assert response.status_code == 403, who
    assert w.client.delete(f"/admin/v1/grants/{grants[0]['id']}", json={"why": "audit"},
                           headers=w.headers("hd-1")).status_code == 204


def test_a_deactivated_user_is_denied_on_the_next_check(make_app, permissions_url, company_a):
    w = company_a
    replica = make_app("permissions", database_url=permissions_url).test_client()
    assert w.check("ua", "cards.view", client=replica)["allowed"] is True
    w.deliver("identity.user.deactivated", {"user_id": "ua", "reason": "inactivity"})
    assert w.check("ua", "cards.view", client=replica) == {
        "allowed": False, "reason": "subject_inactive"}
    w.deliver("identity.user.reactivated", {"user_id": "ua", "actor_id": "hd-1"})
    assert w.check("ua", "cards.view", client=replica)["allowed"] is True


def test_a_lost_invalidation_is_stale_for_at_most_the_cache_max_age(
        make_app, permissions_url, namespace, company_a):
    """Redis unreachable just after a commit loses the version bump; every replica must
    still stop trusting its snapshot PERMISSIONS_CACHE_MAX_AGE after it was built, even
    though the Redis copy under the unchanged version is still there."""
    import time

    import redis

    from services.permissions.cache import INVALIDATOR, Invalidator
    from services.permissions.handlers import registry

    w = company_a
    first = make_app("permissions", database_url=permissions_url, cache_max_age_s=1)
    assert w.check("ua", "cards.view", client=first.test_client())["allowed"] is True
    unreachable = Invalidator(redis.Redis.from_url("redis://127.0.0.1:1/0",
                                                   socket_connect_timeout=0.2), namespace)
    with w.db.transaction() as session:
        session.info[INVALIDATOR] = unreachable
        registry(session, Envelope.new("identity.user.deactivated", "identity",
                                       {"user_id": "ua", "reason": "inactivity"},
                                       subject="ua"))
    # A replica that starts now finds the snapshot in Redis, already part-way through its age.
    second = make_app("permissions", database_url=permissions_url, cache_max_age_s=1)
    w.check("ua", "cards.view", client=second.test_client())
    time.sleep(1.2)
    for replica in (first, second):
        assert w.check("ua", "cards.view", client=replica.test_client()) == {
            "allowed": False, "reason": "subject_inactive"}


def test_a_lost_push_is_stale_for_at_most_the_cache_max_age(make_app, permissions_url,
                                                             company_a):
    """A replica whose watch missed the push of a version bump keeps the old version in
    process; its snapshot under that version must still age out after
    PERMISSIONS_CACHE_MAX_AGE and be rebuilt from the database."""
    import time

    from services.permissions.handlers import registry

    w = company_a
    replica = make_app("permissions", database_url=permissions_url, cache_max_age_s=2)
    api = replica.test_client()
    assert w.check("ua", "cards.view", client=api)["allowed"] is True
    watched = replica.extensions["portico"].watched
    version_key = replica.extensions["permissions.invalidator"].version_key("ua")
    held = watched.mget([version_key])[0]
    with w.db.transaction() as session:
        registry(session, Envelope.new("identity.user.deactivated", "identity",
                                       {"user_id": "ua", "reason": "inactivity"},
                                       subject="ua"))
    watched.mget([version_key])  # takes the push in ...
    watched._values[version_key] = held  # ... which this replica is made to have missed
    assert watched.mget([version_key])[0] == held
    # Stale at first (the push was lost), ...
    assert w.check("ua", "cards.view", client=api)["allowed"] is True
    # ... for no longer than the maximum age.
    deadline = time.monotonic() + 2.5
    while w.check("ua", "cards.view", client=api)["allowed"] and time.monotonic() < deadline:
        time.sleep(0.05)
    assert w.check("ua", "cards.view", client=api) == {
        "allowed": False, "reason": "subject_inactive"}


@pytest.mark.parametrize("batch", [False, True])
def test_a_warm_check_makes_no_redis_round_trip(company_a, batch):
    """The versions and the caller's deny-list entry are read once, then held by the
    watched keys; the snapshots were loaded by the fixture's earlier checks."""
    w = company_a
    cache = w.app.extensions["permissions.snapshots"]
    counting = CountingRedis(cache.redis)
    cache.redis = cache.watched.redis = counting
    checks = [{"subject": s, "action": "cards.view"} for s in ("ua", "pa", "sa")]
    path, body = ("/v1/check/batch", {"checks": checks}) if batch else ("/v1/check", checks[0])
    headers = w.service_headers("permissions.check")  # one token: one deny-list key
    trips = []
    for _ in range(3):
        counting.round_trips = 0
        response = w.client.post(path, json=body, headers=headers)
        assert response.status_code == 200
        assert (response.json["results"][0] if batch else response.json)["allowed"] is True
        trips.append(counting.round_trips)
    assert trips[0] > 0 and trips[1:] == [0, 0]  # the first read its keys, the rest none


def test_checks_still_decide_from_the_database_when_redis_is_down(company_a):
    cache = company_a.app.extensions["permissions.snapshots"]
    cut_off_from_redis(cache)
    # The token's deny-list also needs Redis and fails closed, so call the cache directly.
    assert cache.get("ua")["g"]["cards.view"]
    assert cache.get("nobody") == {"s": "unknown"}


@pytest.mark.parametrize("batch", [False, True])
def test_a_revoked_caller_token_is_refused_on_the_next_check_by_every_replica(
        make_app, permissions_url, company_a, redis_client, namespace, batch):
    from services.common.auth import revoke_jti

    w = company_a
    replica = make_app("permissions", database_url=permissions_url).test_client()
    headers = w.headers("svc-client", scope="permissions.check", jti=f"svc-jti-{batch}")
    path = "/v1/check/batch" if batch else "/v1/check"
    body = {"subject": "ua", "action": "cards.view"}
    if batch:
        body = {"checks": [body, {"subject": "pa", "action": "cards.view"}]}
    for client in (w.client, replica):
        for _ in range(2):  # the second answer comes from the cached claims
            assert client.post(path, json=body, headers=headers).status_code == 200
    revoke_jti(redis_client, namespace, f"svc-jti-{batch}", 60)
    for client in (w.client, replica):
        response = client.post(path, json=body, headers=headers)
        assert response.status_code == 401
        assert "revoked" in response.json["detail"]
        assert "results" not in response.json and "allowed" not in response.json


@pytest.mark.parametrize("body, field", [
    ({"action": "cards.view"}, "subject"),
    ({"subject": "", "action": "cards.view"}, "subject"),
    ({"subject": "ua", "action": 7}, "action"),
    ({"subject": "ua", "action": "cards.view", "resource": {"account_last5": "1234"}},
     "resource.account_last5"),
    ({"subject": "ua", "action": "cards.view", "resource": {"colour": "red"}}, "resource.colour"),
    ({"subject": "ua", "action": "cards.view", "extra": 1}, "extra"),
])
def test_a_malformed_check_gets_per_field_problems(company_a, body, field):
    w = company_a
    headers = w.service_headers("permissions.check")
    response = w.client.post("/v1/check", json=body, headers=headers)
    assert response.status_code == 422, response.json
    assert response.mimetype == "application/problem+json"
    assert field in response.json["errors"], response.json
    batch = w.client.post("/v1/check/batch",
                          json={"checks": [{"subject": "ua", "action": "cards.view"}, body]},
                          headers=headers)
    assert batch.status_code == 422
    assert any(key.startswith("checks.1") for key in batch.json["errors"]), batch.json


def test_a_check_that_is_not_json_is_a_problem_not_a_crash(company_a):
    w = company_a
    headers = w.service_headers("permissions.check")
    broken = w.client.post("/v1/check", data="{not json",
                           headers={**headers, "Content-Type": "application/json"})
    assert broken.status_code == 400
    assert broken.mimetype == "application/problem+json"
    form = w.client.post("/v1/check", data={"subject": "ua"}, headers=headers)
    assert form.status_code == 422 and "subject" in form.json["errors"]
    assert w.client.post("/v1/check/batch", json={"checks": []},
                         headers=headers).status_code == 422


def test_the_check_endpoints_keep_their_openapi_schemas(company_a):
    spec = company_a.client.get("/openapi.json").json
    for path, request, response in (("/v1/check", "Check", "CheckResult"),
                                    ("/v1/check/batch", "CheckBatch", "CheckBatchResult")):
        post = spec["paths"][path]["post"]
        assert post["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
            "/" + request)
        assert post["responses"]["200"]["content"]["application/json"]["schema"][
            "$ref"].endswith("/" + response)
        assert "422" in post["responses"]
