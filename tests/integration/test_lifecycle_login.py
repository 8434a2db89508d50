"""Login under the lifecycle rules: lockout, no username enumeration, inactivity."""

from __future__ import annotations

import pytest
from argon2 import PasswordHasher

from services.identity.lifecycle import inactivity
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import (
    PASSWORD,
    add_user,
    audit_rows,
    login,
    user_row,
    wire,
)


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


@pytest.fixture
def argon2_calls(monkeypatch):
    calls = []
    real = PasswordHasher.verify

    def counting(self, hash_, password):
        calls.append(1)
        return real(self, hash_, password)

    monkeypatch.setattr(PasswordHasher, "verify", counting)
    return calls


def test_right_password_logs_in_and_is_audited(app, client):
    user_id = add_user(app)
    response = login(client)
    assert response.status_code == 303 and response.headers["Location"] == "/account"
    assert user_row(app, user_id).last_login_at is not None
    assert audit_rows(app, "login.succeeded")[-1]["subject_id"] == user_id


def test_five_wrong_passwords_lock_for_fifteen_minutes(app, client, clock):
    user_id = add_user(app)
    for _ in range(4):
        assert login(client, password="wrong-password-123").status_code == 401
    assert user_row(app, user_id).status.value == "active"
    assert login(client, password="wrong-password-123").status_code == 401
    assert user_row(app, user_id).status.value == "locked"
    [locked] = events(app, "identity.user.locked")
    assert locked.subject == user_id and locked.data["reason"] == "failed_logins"
    # The right password is refused while locked, with the same answer as a wrong one.
    refused = login(client)
    assert refused.status_code == 401
    clock.advance(minutes=15, seconds=1)
    assert login(client).status_code == 303
    assert user_row(app, user_id).status.value == "active"


def test_a_success_resets_the_count(app, client):
    user_id = add_user(app)
    for _ in range(4):
        login(client, password="wrong-password-123")
    assert login(client).status_code == 303
    for _ in range(4):
        login(client, password="wrong-password-123")
    assert user_row(app, user_id).status.value == "active"


def test_lockout_threshold_and_minutes_are_settings(make_app, clock):
    app = wire(make_app("identity", session_cookie_secure=False, lockout_threshold=2,
                        lockout_minutes=1), clock)
    user_id = add_user(app)
    client = app.test_client()
    login(client, password="wrong-password-123")
    login(client, password="wrong-password-123")
    assert user_row(app, user_id).status.value == "locked"
    clock.advance(minutes=1, seconds=1)
    assert login(client).status_code == 303


def test_unknown_locked_and_wrong_password_answer_alike(app, client, argon2_calls):
    add_user(app)
    add_user(app, "locked.user")
    for _ in range(5):
        login(client, "locked.user", "wrong-password-123")
    answers = {}
    for name, (username, password) in {"unknown": ("nobody.here", PASSWORD),
                                       "wrong": ("ana.garcia", "wrong-password-123"),
                                       "locked": ("locked.user", PASSWORD)}.items():
        argon2_calls.clear()
        response = login(client, username, password)
        answers[name] = (response.status_code, response.text.replace(username, "USER"))
        assert len(argon2_calls) == 1, name
    assert answers["unknown"] == answers["wrong"] == answers["locked"]
    assert answers["unknown"][0] == 401


def test_inactive_after_120_days_at_login_shows_help_desk_in_english(app, client, clock):
    user_id = add_user(app, clock=clock)
    clock.advance(days=120, seconds=1)
    response = login(client)
    assert response.status_code == 403
    assert "help desk" in response.text and "+1 202 555 0100" in response.text
    assert "Monday to Friday" in response.text and "120 days" in response.text
    assert user_row(app, user_id).status.value == "inactive"
    [deactivated] = events(app, "identity.user.deactivated")
    assert deactivated.data["reason"] == "inactivity" and deactivated.subject == user_id
    # Still inactive: the same page again, and no second event.
    assert login(client).status_code == 403
    assert len(events(app, "identity.user.deactivated")) == 1


def test_help_desk_message_in_spanish_from_the_users_preference(app, client, clock):
    add_user(app, language="es", clock=clock)
    clock.advance(days=121)
    response = login(client)
    assert response.status_code == 403
    assert "mesa de ayuda" in response.text and "de lunes a viernes" in response.text
    assert 'lang="es"' in response.text


def test_inactive_user_with_a_wrong_password_gets_the_generic_answer(app, client, clock):
    add_user(app, clock=clock)
    clock.advance(days=130)
    response = login(client, password="wrong-password-123")
    assert response.status_code == 401 and "help desk" in response.text
    # Every page shows the help desk's number (issue 29): what must not show is the
    # inactivity itself.
    assert "inactive" not in response.text


def test_day_119_still_logs_in(app, client, clock):
    add_user(app, clock=clock)
    clock.advance(days=119)
    assert login(client).status_code == 303


def test_company_period_override(app, client, clock):
    add_user(app, company_id="pci-co", clock=clock)
    with app.extensions["portico"].db.transaction() as session:
        inactivity.set_company_period(session, "pci-co", 90)
    clock.advance(days=91)
    response = login(client)
    assert response.status_code == 403 and "90 days" in response.text


def test_clock_offset_setting_ages_accounts(make_app):
    app = wire(make_app("identity", session_cookie_secure=False, clock_offset_days=121))
    add_user(app)
    response = login(app.test_client(), ui_locales="es")
    assert response.status_code == 403 and "mesa de ayuda" in response.text
