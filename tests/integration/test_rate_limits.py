"""One limiter behind every limited endpoint: one 429 problem, one switch."""

from __future__ import annotations

from tests.integration.helpers.enrollment import valid_body
from tests.integration.helpers.identity import problem
from tests.integration.helpers.oidc import basic, csrf_of

ONE_A_MINUTE = {"login_rate_limit": "1 per minute", "enrollment_rate_limit_ip": "1 per minute",
                "recovery_rate_limit_ip": "1 per minute", "token_rate_limit_ip": "1 per minute"}


def _failed_login(client):
    csrf = csrf_of(client.get("/login").get_data(as_text=True))
    return client.post("/login", data={"username": "nobody", "password": "nope-nope-nope",
                                       "csrf_token": csrf})


def _enrollment(client):
    return client.post("/v1/enrollments", json=valid_body())


def _username_reminder(client):
    return client.post("/v1/username-reminders", json={"email": "ana@example.com"})


def _token(client):
    return client.post("/token", data={"grant_type": "client_credentials"},
                       headers=basic("some-client", "guess"))


def test_every_limited_endpoint_refuses_with_the_same_problem_and_retry_after(make_app):
    app = make_app("identity", session_cookie_secure=False, **ONE_A_MINUTE)
    bodies = []
    for ask in (_failed_login, _enrollment, _username_reminder):
        client = app.test_client()
        assert ask(client).status_code != 429
        refused = ask(client)
        assert refused.status_code == 429
        assert int(refused.headers["Retry-After"]) > 0
        assert refused.headers["Cache-Control"] == "no-store"
        body = problem(refused)
        assert body.pop("request_id")
        bodies.append(body)
    assert bodies[0]["type"].endswith("/too-many-requests") and bodies[0]["status"] == 429
    assert bodies[1:] == bodies[:-1]


def test_the_token_endpoint_refuses_in_rfc_6749_shape(make_app):
    app = make_app("identity", **ONE_A_MINUTE)
    client = app.test_client()
    assert _token(client).status_code == 401
    refused = _token(client)
    assert refused.status_code == 429
    assert refused.json == {"error": "too_many_requests",
                            "error_description": "Too many requests: slow down."}
    assert int(refused.headers["Retry-After"]) > 0
    assert refused.headers["Cache-Control"] == "no-store"


def test_rate_limits_off_turns_every_limit_off(make_app):
    app = make_app("identity", session_cookie_secure=False, rate_limits_enabled=False,
                   **ONE_A_MINUTE)
    for ask in (_failed_login, _enrollment, _username_reminder, _token):
        client = app.test_client()
        assert [ask(client).status_code == 429 for _ in range(3)] == [False] * 3, ask.__name__
