"""One authorization code redeemed many times at once: one token response, and because
the others are replays (RFC 6749 §4.1.2, RFC 9700 §4.5), no token issued from the code is
left valid, whichever request saved its tokens last."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.concurrency


def test_a_code_redeemed_together_answers_once_and_leaves_no_valid_token(identity, race,
                                                                         contenders, rounds):
    client_id, auth = identity.add_client()
    # Twice the rounds: before the fix, a round failed only if every replay came before
    # the winner's save, about one round in two.
    for round_ in range(2 * rounds):
        username = f"ana.{round_}"
        identity.add_user(username)
        code = identity.authorization_code(client_id, username)
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
