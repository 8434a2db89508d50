"""Forgot password (link + security question, single use, 30 minutes, history, everything
signed in revoked) and forgot username, with neutral answers and rate limits."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from services.identity.lifecycle.revocation import end_login_sessions
from services.identity.oidc.models import RefreshToken
from tests.integration.helpers.identity import events, problem, unseal
from tests.integration.helpers.lifecycle import (
    ANSWERS,
    PASSWORD,
    add_user,
    audit_rows,
    csrf_of,
    login,
    user_row,
    wire,
)

NEW = "Quiet-Lantern-77#"


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


def ask_reset(client, who="ana.garcia"):
    return client.post("/v1/password-resets", json={"username_or_email": who})


def reset_token(app) -> str:
    url = unseal(app, events(app, "identity.password_reset.requested")[-1])["reset_url"]
    return re.search(r"token=([^&]+)", url).group(1)


def question(client, token):
    return client.post("/v1/password-resets/question", json={"token": token})


def complete(client, token, answer, password=NEW):
    return client.post("/v1/password-resets/complete", json={
        "token": token, "answer": answer, "password": password, "password_confirm": password})


def answer_for(client, token):
    return ANSWERS[question(client, token).get_json()["question"]]


def test_neutral_answer_for_known_and_unknown(app, client):
    add_user(app)
    known = ask_reset(client, "ana.garcia")
    unknown = ask_reset(client, "nobody.here")
    by_email = ask_reset(client, "ANA.GARCIA@example.com")
    assert known.status_code == unknown.status_code == by_email.status_code == 202
    assert known.get_json() == unknown.get_json() == by_email.get_json()
    assert len(events(app, "identity.password_reset.requested")) == 2
    assert audit_rows(app, "password_reset.no_match")


def test_reset_with_link_and_answer(app, client, redis_client, namespace):
    user_id = add_user(app, email="ana@example.com")
    ask_reset(client)
    [requested] = events(app, "identity.password_reset.requested")
    assert requested.tracking_number and requested.data["email"] == "ana@example.com"
    assert "reset_url" not in requested.to_json() or requested.sealed
    token = reset_token(app)
    asked = question(client, token).get_json()
    assert asked["question"] in ("first_pet", "birth_city", "first_job") and asked["text"]
    done = complete(client, token, answer_for(client, token).upper() + "  ")
    assert done.status_code == 200, done.get_json()
    [changed] = events(app, "identity.password.changed")
    assert changed.data["via"] == "reset" and changed.tracking_number == requested.tracking_number
    assert login(client, password=PASSWORD).status_code == 401
    assert login(client, password=NEW).status_code == 303
    # Single use: the same link cannot be used again.
    again = complete(client, token, "whatever", "Another-Pass-99!")
    assert again.status_code == 400 and problem(again)["type"].endswith("reset-link-invalid")
    assert user_row(app, user_id).status.value == "active"


def test_link_expires_after_30_minutes(app, client, clock):
    add_user(app)
    ask_reset(client)
    token = reset_token(app)
    clock.advance(minutes=30, seconds=1)
    assert question(client, token).status_code == 400
    assert complete(client, token, "Rex").status_code == 400


def test_answer_is_required_and_wrong_answers_void_the_link(app, client):
    add_user(app)
    ask_reset(client)
    token = reset_token(app)
    missing = client.post("/v1/password-resets/complete", json={
        "token": token, "password": NEW, "password_confirm": NEW})
    assert missing.status_code == 422 and "answer" in problem(missing)["errors"]
    for _ in range(3):
        wrong = complete(client, token, "definitely wrong")
        assert wrong.status_code == 400 and "answer" in problem(wrong)["errors"]
    # The link is void now, even with the right answer.
    right = complete(client, token, answer_for(client, token) if question(
        client, token).status_code == 200 else "Rex")
    assert right.status_code == 400
    assert login(client).status_code == 303  # the old password still works


def test_answer_alone_is_not_enough(app, client):
    add_user(app)
    ask_reset(client)
    forged = complete(client, "not-the-emailed-token-" + "x" * 20, "Rex")
    assert forged.status_code == 400 and problem(forged)["type"].endswith("reset-link-invalid")


def test_new_password_policy_and_history(make_app, clock):
    app = wire(make_app("identity", session_cookie_secure=False, rate_limits_enabled=False),
               clock)
    client = app.test_client()
    add_user(app)
    ask_reset(client)
    token = reset_token(app)
    answer = answer_for(client, token)
    same = complete(client, token, answer, PASSWORD)
    assert same.status_code == 422 and "password" in problem(same)["errors"]
    common = complete(client, token, answer, "password1234")
    assert common.status_code == 422
    # Cycle through passwords: the fifth-last is refused, the sixth-last allowed.
    history = [f"Orchid-Meadow-{n}{n}!x" for n in range(1, 6)]
    assert complete(client, token, answer, history[0]).status_code == 200
    for password in history[1:]:
        ask_reset(client)
        t = reset_token(app)
        assert complete(client, t, answer_for(client, t), password).status_code == 200
    ask_reset(client)
    t = reset_token(app)
    assert complete(client, t, answer_for(client, t), history[1]).status_code == 422
    assert complete(client, t, answer_for(client, t), history[0]).status_code == 422
    assert complete(client, t, answer_for(client, t), PASSWORD).status_code == 200


def test_reset_revokes_every_session_and_refresh_token(app, client, redis_client, namespace):
    user_id = add_user(app)
    other = app.test_client()
    assert login(other).status_code == 303
    assert other.get("/account").status_code == 200
    with app.extensions["portico"].db.transaction() as session:
        session.add(RefreshToken(token_digest="d" * 64, family_id="fam-1", client_id="rp",
                                 user_id=user_id, scope="openid", auth_time=0,
                                 expires_at=app.extensions["portico"].clock()
                                 + timedelta(days=1)))
    ask_reset(client)
    token = reset_token(app)
    assert complete(client, token, answer_for(client, token)).status_code == 200
    assert other.get("/account").status_code == 302
    with app.extensions["portico"].db.read() as session:
        rows = session.scalars(select(RefreshToken).where(RefreshToken.user_id == user_id)).all()
        assert rows and all(r.revoked_at is not None for r in rows)
    with app.extensions["portico"].db.transaction() as session:
        assert end_login_sessions(session, redis_client, namespace, user_id) == 0


def test_reset_lifts_a_lock(app, client):
    user_id = add_user(app)
    for _ in range(5):
        login(client, password="wrong-password-123")
    assert user_row(app, user_id).status.value == "locked"
    ask_reset(client)
    token = reset_token(app)
    assert complete(client, token, answer_for(client, token)).status_code == 200
    assert login(client, password=NEW).status_code == 303


def test_inactive_users_get_no_reset_link(app, client, clock):
    add_user(app, clock=clock)
    clock.advance(days=121)
    login(client)
    assert ask_reset(client).status_code == 202
    assert events(app, "identity.password_reset.requested") == []


def test_rate_limited_per_target(make_app, clock):
    app = wire(make_app("identity", session_cookie_secure=False), clock)
    client = app.test_client()
    add_user(app)
    statuses = [ask_reset(client).status_code for _ in range(4)]
    assert statuses[:3] == [202, 202, 202] and statuses[3] == 429
    last = ask_reset(client)
    assert last.status_code == 429 and int(last.headers["Retry-After"]) > 0
    assert problem(last)["status"] == 429


def test_reset_pages_in_spanish(app, client):
    add_user(app, language="es")
    page = client.get("/forgot-password", headers={"Accept-Language": "es"})
    assert "¿Olvidó su contraseña?" in page.text
    no_csrf = client.post("/forgot-password", data={"username_or_email": "ana.garcia"})
    assert no_csrf.status_code == 400 and events(app, "identity.password_reset.requested") == []
    sent = client.post("/forgot-password", data={"username_or_email": "ana.garcia",
                                                 "csrf_token": csrf_of(page.text)})
    assert sent.status_code == 202
    token = reset_token(app)
    form = client.get("/reset-password", query_string={"token": token})
    assert form.status_code == 200 and 'lang="es"' in form.text
    assert form.headers["X-Frame-Options"] == "DENY"
    texts = {"first_pet": "mascota", "birth_city": "ciudad", "first_job": "empleo"}
    key = next(k for k, v in texts.items() if v in form.text.lower())
    done = client.post("/reset-password", data={
        "token": token, "answer": ANSWERS[key], "password": NEW, "password_confirm": NEW,
        "csrf_token": csrf_of(form.text)})
    assert done.status_code == 200 and "Contraseña cambiada" in done.text


def test_forgot_username_is_neutral_and_goes_to_the_address_on_file(app, client):
    add_user(app, email="ana@example.com")
    known = client.post("/v1/username-reminders", json={"email": "ANA@example.com"})
    unknown = client.post("/v1/username-reminders", json={"email": "who@example.com"})
    assert known.status_code == unknown.status_code == 202
    assert known.get_json() == unknown.get_json()
    [reminder] = events(app, "identity.username.reminder")
    assert reminder.data["email"] == "ana@example.com"
    assert unseal(app, reminder) == {"username": "ana.garcia"}
    bad = client.post("/v1/username-reminders", json={"email": "not-an-email"})
    assert bad.status_code == 422 and "email" in problem(bad)["errors"]
