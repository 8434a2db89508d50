"""One authorization code redeemed many times at once: one token response, and because
the others are replays (RFC 6749 §4.1.2, RFC 9700 §4.5), no token issued from the code is
left valid, whichever request saved its tokens last."""

from __future__ import annotations

import time

import pytest

pytestmark = pytest.mark.concurrency


def _slow_entitlements(request, context):
    # Permissions answering in 300 ms (the HTTP boundary, mocked): the winner issues its
    # tokens that long after claiming the code, so the replays arrive in between. Before
    # the fix their revocation found nothing saved yet and the winner's tokens lived on.
    time.sleep(0.3)
    return {"entitlements": [{"key": "reports.view"}]}


def test_a_code_redeemed_together_answers_once_and_leaves_no_valid_token(
        identity, race, contenders, rounds, requests_mock):
    client_id, auth = identity.add_client()
    for round_ in range(rounds):
        username = f"ana.{round_}"
        user_id = identity.add_user(username)
        requests_mock.get(f"{identity.permissions_url}/v1/users/{user_id}/entitlements",
                          json=_slow_entitlements)
        code = identity.authorization_code(client_id, username,
                                           scope="openid offline_access entitlements")
        answers = race(contenders, lambda i, code=code: identity.redeem(code, auth))
        codes = [a.status_code for a in answers]
        assert sorted(codes) == [200] + [400] * (contenders - 1), (round_, codes)
        assert {a.get_json()["error"] for a in answers if a.status_code == 400} == {
            "invalid_grant"}
        token = answers[codes.index(200)].get_json()
        # The replays revoked the code's family: the winner's tokens included.
        api = identity.client()
        refreshed = api.post("/token", headers=auth, data={
            "grant_type": "refresh_token", "refresh_token": token["refresh_token"]})
        assert refreshed.status_code == 400, (round_, refreshed.get_json())
        assert refreshed.get_json()["error"] == "invalid_grant"
        introspected = api.post("/introspect", headers=auth,
                                data={"token": token["access_token"]})
        assert introspected.get_json() == {"active": False}, round_
