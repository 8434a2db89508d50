"""The service-to-service client at the HTTP boundary (requests-mock)."""

from __future__ import annotations

import pytest
import requests

from services.common.http import ClientCredentials, ServiceClient

TOKEN_URL = "http://identity.test/token"


def test_token_is_cached_and_renewed_before_expiry(requests_mock, monkeypatch):
    issued = iter(["t1", "t2"])
    requests_mock.post(TOKEN_URL, json=lambda r, c: {"access_token": next(issued), "expires_in": 100})
    creds = ClientCredentials(TOKEN_URL, "svc", "s3cret", "permissions", renew_before=30)
    clock = [1000.0]
    monkeypatch.setattr("services.common.http.time.monotonic", lambda: clock[0])
    assert creds.token() == "t1"
    clock[0] += 60
    assert creds.token() == "t1"
    clock[0] += 15  # 75 s in: within 30 s of expiry
    assert creds.token() == "t2"
    assert requests_mock.call_count == 2
    sent = requests_mock.request_history[0]
    assert "grant_type=client_credentials" in sent.text and "resource=permissions" in sent.text
    assert sent.headers["Authorization"].startswith("Basic ")


def test_requests_carry_the_bearer_token_and_retry_once_on_401(requests_mock):
    issued = iter(["old", "new"])
    requests_mock.post(TOKEN_URL, json=lambda r, c: {"access_token": next(issued), "expires_in": 300})
    requests_mock.get("http://perm.test/v1/x", [{"status_code": 401}, {"json": {"ok": True}}])
    client = ServiceClient("http://perm.test", ClientCredentials(TOKEN_URL, "svc", "s", "permissions"))
    assert client.get_json("/v1/x") == {"ok": True}
    auths = [h.headers.get("Authorization") for h in requests_mock.request_history if h.method == "GET"]
    assert auths == ["Bearer old", "Bearer new"]


def test_timeout_is_always_set(requests_mock):
    requests_mock.get("http://perm.test/v1/y", json={})
    ServiceClient("http://perm.test", timeout=1.5).get_json("/v1/y")
    assert requests_mock.request_history[0].timeout == 1.5


def test_errors_are_raised_not_swallowed(requests_mock):
    requests_mock.post("http://perm.test/v1/z", status_code=422, json={"title": "bad"})
    with pytest.raises(requests.HTTPError):
        ServiceClient("http://perm.test").post_json("/v1/z", {"a": 1})
