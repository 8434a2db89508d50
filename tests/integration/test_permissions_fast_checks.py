"""POST /v1/check and /v1/check/batch below Flask (the kernel's fast routes): the warm,
authorised, well-formed check is answered there, and every request gets exactly the
answer the views would give it."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.common.app import context
from services.common.auth import revoke_client, revoke_jti
from tests.integration.helpers.permissions import World, cut_off_from_redis
from tests.support import CHECK_BODIES, watch_flask

REQUEST_ID = "fast-vs-flask"


class Paths:
    """The app as served (fast routes first) and its Flask app alone, side by side."""

    def __init__(self, w: World) -> None:
        self.w = w
        self.flask_calls, self.flask_only = watch_flask(w.app)
        self.served = w.app.test_client()

    def both(self, path: str, body: object, headers: dict[str, str]):
        raw = json.dumps(body)
        headers = {**headers, "Content-Type": "application/json", "X-Request-ID": REQUEST_ID}
        return [_answer(client.post(path, data=raw, headers=headers))
                for client in (self.served, self.flask_only)]


def _answer(response) -> tuple:
    return (response.status, response.headers.get("Content-Type"),
            response.headers.get("WWW-Authenticate"), response.get_data())


@pytest.fixture
def paths(company_a) -> Paths:
    return Paths(company_a)


def test_warm_authorised_checks_never_enter_flask(paths):
    w = paths.w
    service = w.service_headers("permissions.check")
    for _ in range(2):
        single = paths.served.post("/v1/check", json={"subject": "ua", "action": "cards.view"},
                                   headers=service)
        batch = paths.served.post("/v1/check/batch", headers=service, json={"checks": [
            {"subject": "ua", "action": "cards.view"},
            {"subject": "pb", "action": "cards.view", "resource": {"account_last5": "33333"}}]})
        assert single.status_code == batch.status_code == 200
        assert set(single.json) == {"allowed", "reason"}
        assert len(batch.json["results"]) == 2
    assert paths.flask_calls == []


def _cases(w: World) -> list[tuple[str, str, object, dict[str, str]]]:
    service = w.service_headers("permissions.check")
    one = {"subject": "ua", "action": "cards.view"}
    other_audience = {"Authorization": "Bearer " + w.issuer.issue(
        sub="svc", aud="tracking", scope="permissions.check")}
    return [
        ("allowed or not", "/v1/check", one, service),
        ("an account", "/v1/check", {**one, "resource": {"account_last5": "11111"}}, service),
        ("a fingerprint", "/v1/check",
         {**one, "resource": {"account_fingerprint": "fp-aaaa-2"}}, service),
        ("unknown subject", "/v1/check", {"subject": "nobody", "action": "cards.view"}, service),
        ("other company", "/v1/check",
         {**one, "resource": {"company_id": "co-b"}}, service),
        ("read scope", "/v1/check", one, w.service_headers("permissions.read")),
        ("a user about themself", "/v1/check", one, w.headers("ua")),
        ("a user about another", "/v1/check", {**one, "subject": "pa"}, w.headers("ua")),
        ("no token", "/v1/check", one, {}),
        ("not a bearer token", "/v1/check", one, {"Authorization": "Basic dTpw"}),
        ("a forged token", "/v1/check", one, {"Authorization": "Bearer e30.e30.e30"}),
        ("another service's token", "/v1/check", one, other_audience),
        ("a missing field", "/v1/check", {"action": "cards.view"}, service),
        ("an unknown field", "/v1/check", {**one, "extra": 1}, service),
        ("not an object", "/v1/check", ["ua"], service),
        ("batch", "/v1/check/batch", {"checks": [one, {**one, "subject": "pb"}]}, service),
        ("batch with a bad check", "/v1/check/batch", {"checks": [one, {"subject": ""}]},
         service),
        ("empty batch", "/v1/check/batch", {"checks": []}, service),
        ("batch of another's", "/v1/check/batch", {"checks": [{**one, "subject": "pa"}]},
         w.headers("ua")),
    ]


def test_every_kind_of_request_gets_the_answer_the_views_give(paths):
    for name, path, body, headers in _cases(paths.w):
        served, flask_only = paths.both(path, body, headers)
        assert served == flask_only, name


def test_a_batch_above_the_configured_bound_gets_the_views_answer(paths):
    w = paths.w
    bound = context(w.app).settings.check_batch_max
    checks = [{"subject": "ua", "action": "cards.view"}] * (bound + 1)
    served, flask_only = paths.both("/v1/check/batch", {"checks": checks},
                                    w.service_headers("permissions.check"))
    assert served == flask_only
    assert served[0].startswith("422")


def test_a_revoked_token_gets_the_views_401(paths, redis_client, namespace):
    w = paths.w
    headers = w.headers("svc", scope="permissions.check", jti="jti-fast")
    one = {"subject": "ua", "action": "cards.view"}
    assert paths.both("/v1/check", one, headers)[0][0] == "200 OK"
    revoke_jti(redis_client, namespace, "jti-fast", 60)
    for path, body in (("/v1/check", one), ("/v1/check/batch", {"checks": [one]})):
        served, flask_only = paths.both(path, body, headers)
        assert served == flask_only
        assert served[0].startswith("401") and b"revoked" in served[3]


def test_a_deleted_clients_token_gets_the_views_401(paths, redis_client, namespace):
    """Issue 24: a deleted client's tokens were accepted until they expired."""
    w = paths.w
    headers = w.headers("svc", scope="permissions.check", client_id="deleted-rp")
    one = {"subject": "ua", "action": "cards.view"}
    assert paths.both("/v1/check", one, headers)[0][0] == "200 OK"
    revoke_client(redis_client, namespace, "deleted-rp", 60)
    for path, body in (("/v1/check", one), ("/v1/check/batch", {"checks": [one]})):
        served, flask_only = paths.both(path, body, headers)
        assert served == flask_only
        assert served[0].startswith("401") and b"revoked" in served[3]


def test_when_the_cache_cannot_reach_redis_the_view_decides_from_the_database(paths):
    w = paths.w
    cut_off_from_redis(w.app.extensions["permissions.snapshots"])
    response = paths.served.post("/v1/check", json={"subject": "ua", "action": "cards.view"},
                                 headers=w.service_headers("permissions.check"))
    assert response.status_code == 200 and set(response.json) == {"allowed", "reason"}
    assert paths.flask_calls == ["/v1/check"]


@settings(max_examples=150, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=CHECK_BODIES, batch=st.booleans())
def test_any_body_gets_the_answer_the_views_give(paths, body, batch):
    path, payload = ("/v1/check/batch", {"checks": [body]}) if batch else ("/v1/check", body)
    served, flask_only = paths.both(path, payload, paths.w.service_headers("permissions.check"))
    assert served == flask_only
