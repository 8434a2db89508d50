"""The login's second step: a user with an authenticator app gives the right password,
then a TOTP or recovery code at ``/login/second-factor``; only then is the session
signed in, with amr pwd+otp+mfa."""

from __future__ import annotations

import pyotp
import pytest

from services.identity import sessions
from tests.integration.helpers.factors import set_up_totp
from tests.integration.helpers.lifecycle import add_user, audit_rows, csrf_of, login, user_row


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


def _enrolled(app, clock) -> tuple[str, str, list[str]]:
    """A user with a confirmed app (set up from the page), signed out; the step advanced."""
    user_id = add_user(app)
    browser = app.test_client()
    login(browser)
    secret, codes = set_up_totp(browser)
    clock.advance(seconds=60)
    return user_id, secret, codes


def _second_step(client, code: str, next_url: str = "/account"):
    page = client.get("/login/second-factor", query_string={"next": next_url})
    assert page.status_code == 200, page.status_code
    return client.post("/login/second-factor", data={
        "code": code, "csrf_token": csrf_of(page.text), "next": next_url})


def _amr(app, client) -> list[str] | None:
    with app.test_request_context(headers={"Cookie": client.get_cookie(
            sessions.COOKIE).key + "=" + client.get_cookie(sessions.COOKIE).value}):
        found = sessions.load_session()
        return found.amr if found and found.authenticated else None


def test_the_password_alone_does_not_sign_in(app, client, clock):
    _enrolled(app, clock)
    answer = login(client)
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/login/second-factor")
    assert _amr(app, client) is None
    assert client.get("/account/security").status_code == 302  # not signed in


def test_a_totp_code_signs_in_with_otp_and_mfa(app, client, clock):
    user_id, secret, _ = _enrolled(app, clock)
    login(client)
    answer = _second_step(client, pyotp.TOTP(secret).at(clock().timestamp()))
    assert answer.status_code == 303 and answer.headers["Location"] == "/account"
    assert _amr(app, client) == ["pwd", "otp", "mfa"]
    assert audit_rows(app, "login.second_factor")[-1]["subject_id"] == user_id


def test_a_recovery_code_signs_in_once(app, client, clock):
    _, _, codes = _enrolled(app, clock)
    login(client)
    used = _second_step(client, codes[0])
    assert used.status_code == 200  # signed in; told how many codes are left
    assert "Unused recovery codes left: 9." in used.text and 'href="/account"' in used.text
    assert _amr(app, client) == ["pwd", "otp", "mfa"]
    other = app.test_client()
    login(other)
    assert _second_step(other, codes[0]).status_code == 401
    assert _second_step(other, codes[1]).status_code == 200


def test_wrong_codes_lock_the_account(app, client, clock):
    user_id, secret, _ = _enrolled(app, clock)
    login(client)
    for _ in range(5):
        assert _second_step(client, "123456").status_code == 401
    assert user_row(app, user_id).status.value == "locked"
    assert _second_step(client, pyotp.TOTP(secret).at(clock().timestamp())).status_code == 401


def test_the_second_step_needs_a_right_password_first(app, client):
    assert client.get("/login/second-factor").status_code == 303


def test_a_user_without_a_factor_signs_in_with_the_password(app, client):
    add_user(app)
    assert login(client).headers["Location"] == "/account"
    assert _amr(app, client) == ["pwd"]


def test_retyping_the_password_does_not_reset_the_count_that_guards_the_codes(app, client,
                                                                             clock):
    """Someone who has the password but not the app cannot guess codes four at a time
    and then sign in with the password again to start over; nor does the password alone
    count as a login (last_login_at, inactivity, the audit's login.succeeded)."""
    user_id, _, _ = _enrolled(app, clock)
    before = user_row(app, user_id).last_login_at
    succeeded = len(audit_rows(app, "login.succeeded"))
    login(client)
    for _ in range(3):
        assert _second_step(client, "123456").status_code == 401
    retry = app.test_client()
    assert login(retry).headers["Location"].startswith("/login/second-factor")
    for _ in range(2):
        assert _second_step(retry, "123456").status_code == 401
    assert user_row(app, user_id).status.value == "locked"
    assert user_row(app, user_id).last_login_at == before
    assert len(audit_rows(app, "login.succeeded")) == succeeded


# -- a cap on wrong codes that neither the lock's end nor a password reset lifts ----------

@pytest.fixture
def capped_app(make_app, clock):
    """Three wrong codes in a row block codes; the temporary lock needs ten."""
    from tests.integration.helpers.lifecycle import wire

    return wire(make_app("identity", session_cookie_secure=False,
                         second_factor_max_failures=3, lockout_threshold=10), clock)


def _wrong_codes(app, client, count: int) -> None:
    for _ in range(count):
        login(client)
        assert _second_step(client, "000000").status_code == 401


def test_wrong_codes_in_a_row_block_codes_until_the_help_desk_unlocks(capped_app, clock):
    """The right code is refused once the cap is reached, whatever time passes and after a
    password reset; a passkey is not guessable and is not concerned; the help desk's
    unlock lets codes in again."""
    from services.identity.lifecycle import credentials, helpdesk
    from services.identity.lifecycle.domain import Actor
    from services.identity.lifecycle.web import cfg as lifecycle_cfg
    from services.identity.models import User

    app = capped_app
    user_id, secret, codes = _enrolled(app, clock)
    client = app.test_client()
    _wrong_codes(app, client, 3)
    blocked = audit_rows(app, "second_factor.codes_blocked")
    assert len(blocked) == 1 and blocked[0]["detail"]["failures"] == 3

    clock.advance(days=2)
    login(client)
    assert _second_step(client, pyotp.TOTP(secret).at(clock().timestamp())).status_code == 401
    assert _second_step(client, codes[0]).status_code == 401  # recovery codes too
    refused = audit_rows(app, "login.refused")
    assert refused[-1]["detail"]["reason"] == "second_factor_codes_blocked"

    ctx = app.extensions["portico"]
    with app.app_context(), ctx.db.transaction() as session:
        credentials.replace_password(session, lifecycle_cfg(), ctx.redis,
                                     ctx.settings.redis_namespace, session.get(User, user_id),
                                     "a brand new passphrase 2026")
    clock.advance(seconds=60)
    login(client, password="a brand new passphrase 2026")
    assert _second_step(client, pyotp.TOTP(secret).at(clock().timestamp())).status_code == 401

    with app.app_context(), ctx.db.transaction() as session:
        assert helpdesk.user_view(session, lifecycle_cfg(), session.get(User, user_id))[
            "second_factor_codes_blocked"] is True
        helpdesk.unlock(session, lifecycle_cfg(), user_id, Actor("agent", "agent-1", "-", "r"),
                        "caller verified, ticket 12")
    clock.advance(seconds=60)
    login(client, password="a brand new passphrase 2026")
    assert _second_step(client, pyotp.TOTP(secret).at(clock().timestamp())).status_code == 303


def test_a_completed_sign_in_restarts_the_count(capped_app, clock):
    app = capped_app
    _, secret, _ = _enrolled(app, clock)
    client = app.test_client()
    _wrong_codes(app, client, 2)
    login(client)
    assert _second_step(client, pyotp.TOTP(secret).at(clock().timestamp())).status_code == 303
    clock.advance(seconds=60)
    other = app.test_client()
    _wrong_codes(app, other, 2)  # two more: not three in a row
    login(other)
    assert _second_step(other, pyotp.TOTP(secret).at(clock().timestamp())).status_code == 303
