"""Passkey sign-ins under concurrency (PostgreSQL, real parallel requests): of assertions
presenting one signature counter, each answering its own session's challenge (a cloned
authenticator), one signs in; one assertion replayed together signs in once."""

from __future__ import annotations

import pytest
from cryptography.fernet import Fernet

from services.identity.factors.passkey_models import WebauthnCredential
from services.identity.oidc import keys
from tests.concurrency.conftest import POOL, Identity
from tests.integration.helpers.passkeys import (
    SETTINGS,
    add_passkey,
    passwordless_assertion,
)

pytestmark = pytest.mark.concurrency


@pytest.fixture
def identity(make_app) -> Identity:
    app = make_app("identity", session_cookie_secure=False, key_activation_delay=0,
                   rate_limits_enabled=False, db_pool_size=POOL, **SETTINGS)
    settings = app.extensions["portico"].settings
    with app.extensions["portico"].db.transaction() as session:
        keys.ensure_keys(session, Fernet(settings.key_encryption_key))
    return Identity(app)


def _enrolled(identity: Identity, username: str):
    """A user with a passkey added from the page: the user id and the authenticator."""
    user_id = identity.add_user(username)
    page, post = identity.login_form()
    assert post(username, identity.password).status_code == 303
    authenticator, added = add_passkey(page)
    assert added.status_code == 200, added.text
    return user_id, authenticator


def _stored_count(identity: Identity, user_id: str) -> int:
    with identity.db.read() as session:
        return session.query(WebauthnCredential).filter_by(user_id=user_id).one().sign_count


def test_one_counter_presented_together_signs_in_once(identity, race, contenders, rounds):
    for round_ in range(rounds):
        user_id, authenticator = _enrolled(identity, f"key{round_}")
        counter = 10 + round_
        # Every contender has a session and a challenge of its own: only the counter is
        # shared, as two copies of one authenticator would share it.
        started = []
        for _ in range(contenders):
            client = identity.client()
            headers, assertion = passwordless_assertion(client, authenticator,
                                                        sign_count=counter)
            started.append((client, headers, assertion))
        answers = race(contenders, lambda i, s=started: s[i][0].post(
            "/login/passkey", headers=s[i][1], json={"credential": s[i][2]}))
        statuses = sorted(a.status_code for a in answers)
        assert statuses == [200] + [401] * (contenders - 1), (round_, statuses)
        assert _stored_count(identity, user_id) == counter


def test_one_assertion_replayed_together_signs_in_once(identity, race, contenders, rounds):
    for round_ in range(rounds):
        _, authenticator = _enrolled(identity, f"replay{round_}")
        client = identity.client()
        headers, assertion = passwordless_assertion(client, authenticator)
        # One session's cookie on every contender: the same request sent many times.
        cookie = client.get_cookie("portico_session")
        clients = []
        for _ in range(contenders):
            copy = identity.client()
            copy.set_cookie(cookie.key, cookie.value, domain=cookie.domain)
            clients.append(copy)
        answers = race(contenders, lambda i, c=clients, h=headers, a=assertion: c[i].post(
            "/login/passkey", headers=h, json={"credential": a}))
        statuses = [a.status_code for a in answers]
        # A loser is refused (401), or finds the session already replaced by the winner's
        # signed-in one (403: its CSRF token died with it); none is a server error.
        assert statuses.count(200) == 1, (round_, statuses)
        assert set(statuses) <= {200, 401, 403}, (round_, statuses)
