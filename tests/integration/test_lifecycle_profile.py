"""/v1/me and /account: profile fields, preferences, re-verified email change, password."""

from __future__ import annotations

import re

import pytest

from services.identity.lifecycle.models import UserProfile
from tests.integration.test_lifecycle_support import (  # noqa: F401
    PASSWORD,
    add_user,
    app_fixture,
    audit_rows,
    client_fixture,
    clock_fixture,
    csrf_of,
    events,
    login,
    problem,
    unseal,
    user_row,
)

NEW = "Quiet-Lantern-77#"


@pytest.fixture
def me(app, token_issuer):
    user_id = add_user(app, email="ana@example.com")
    token = token_issuer.issue(sub=user_id, aud="identity", scope="openid profile")
    return user_id, {"Authorization": f"Bearer {token}"}


def test_me_needs_the_profile_scope(app, client, token_issuer):
    user_id = add_user(app)
    token = token_issuer.issue(sub=user_id, aud="identity", scope="openid")
    assert client.get("/v1/me").status_code == 401
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {token}"}).status_code == 403
    service = token_issuer.issue(sub="some-client", aud="identity", scope="profile")
    assert client.get("/v1/me", headers={"Authorization": f"Bearer {service}"}
                      ).status_code == 403


def test_read_and_update_profile_and_preferences(app, client, me):
    user_id, auth = me
    body = client.get("/v1/me", headers=auth).get_json()
    assert body["email"] == "ana@example.com" and body["notifications"] == {"status_changes": True}
    answer = client.patch("/v1/me", headers=auth, json={
        "job_title": "Treasurer", "phone": "+1 (202) 555-0143", "preferred_language": "es",
        "notifications": {"status_changes": False}})
    assert answer.status_code == 200, answer.get_json()
    result = answer.get_json()
    assert result["profile"]["phone"] == "+12025550143"
    assert result["profile"]["job_title"] == "Treasurer"
    assert result["profile"]["notifications"] == {"status_changes": False}
    [changed] = events(app, "identity.contact.changed")
    assert changed.tracking_number == result["tracking_number"]
    assert changed.data["notifications"] == {"status_changes": False}
    assert changed.data["phone"] == "+12025550143" and changed.data["preferred_language"] == "es"
    with app.extensions["portico"].db.read() as session:
        assert session.get(UserProfile, user_id).notify_status_changes is False
    assert user_row(app, user_id).preferred_language == "es"
    same = client.patch("/v1/me", headers=auth, json={"job_title": "Treasurer"})
    assert same.get_json()["tracking_number"] is None  # nothing changed, nothing published
    assert len(events(app, "identity.contact.changed")) == 1


def test_invalid_fields_are_problems(app, client, me):
    _, auth = me
    answer = client.patch("/v1/me", headers=auth, json={
        "phone": "12", "preferred_language": "fr", "username": "new"})
    assert answer.status_code == 422
    errors = problem(answer)["errors"]
    assert {"phone", "preferred_language", "username"} <= set(errors)


def test_email_change_needs_verification_of_the_new_address(app, client, me):
    user_id, auth = me
    answer = client.patch("/v1/me", headers=auth, json={"email": "ana.new@example.com"})
    tracking = answer.get_json()["email_change_tracking_number"]
    assert tracking and answer.get_json()["profile"]["email"] == "ana@example.com"
    assert answer.get_json()["profile"]["pending_email"] == "ana.new@example.com"
    [requested] = events(app, "identity.contact.change_requested")
    assert requested.data["new_email"] == "ana.new@example.com"
    assert requested.data["old_email"] == "ana@example.com"
    assert requested.tracking_number == tracking
    url = unseal(app, requested)["verification_url"]
    token = re.search(r"token=([^&]+)", url).group(1)
    assert user_row(app, user_id).email == "ana@example.com"
    confirmed = client.post("/v1/me/email-verifications", json={"token": token})
    assert confirmed.status_code == 200 and confirmed.get_json()["email"] == "ana.new@example.com"
    assert user_row(app, user_id).email == "ana.new@example.com"
    [changed] = events(app, "identity.contact.changed")
    assert changed.data["old_email"] == "ana@example.com" and changed.tracking_number == tracking
    reused = client.post("/v1/me/email-verifications", json={"token": token})
    assert reused.status_code == 400


def test_email_link_expires(app, client, me, clock):
    _, auth = me
    client.patch("/v1/me", headers=auth, json={"email": "ana.new@example.com"})
    url = unseal(app, events(app, "identity.contact.change_requested")[0])["verification_url"]
    clock.advance(hours=24, seconds=1)
    token = re.search(r"token=([^&]+)", url).group(1)
    assert client.post("/v1/me/email-verifications", json={"token": token}).status_code == 400


def test_change_password_via_api(app, client, me):
    user_id, auth = me
    browser = app.test_client()
    assert login(browser).status_code == 303
    wrong = client.post("/v1/me/password", headers=auth, json={
        "current_password": "not-it-at-all", "password": NEW, "password_confirm": NEW})
    assert wrong.status_code == 400 and "current_password" in problem(wrong)["errors"]
    done = client.post("/v1/me/password", headers=auth, json={
        "current_password": PASSWORD, "password": NEW, "password_confirm": NEW})
    assert done.status_code == 200
    [changed] = events(app, "identity.password.changed")
    assert changed.data["via"] == "profile" and changed.tracking_number == done.get_json()[
        "tracking_number"]
    assert browser.get("/account").status_code == 302
    assert login(browser, password=NEW).status_code == 303


def test_account_page_updates_and_keeps_this_session(app, client):
    user_id = add_user(app)
    other = app.test_client()
    login(other)
    assert client.get("/account").status_code == 302
    login(client)
    page = client.get("/account")
    assert page.status_code == 200 and 'name="csrf_token"' in page.text
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    refused = client.post("/account", data={"job_title": "X", "phone": "+12025550143",
                                            "preferred_language": "en", "email": "a@b.example"})
    assert refused.status_code == 400 and events(app, "identity.contact.changed") == []
    saved = client.post("/account", data={
        "job_title": "Controller", "phone": "+1 202 555 0143", "preferred_language": "es",
        "email": "ana.garcia@example.com", "csrf_token": csrf_of(page.text)})
    assert saved.status_code == 200 and "Número de seguimiento" in saved.text
    with app.extensions["portico"].db.read() as session:
        profile = session.get(UserProfile, user_id)
        assert profile.job_title == "Controller" and profile.notify_status_changes is False
    changed = client.post("/account/password", data={
        "current_password": PASSWORD, "password": NEW, "password_confirm": NEW,
        "csrf_token": csrf_of(saved.text)})
    assert changed.status_code == 200
    assert client.get("/account").status_code == 200  # this session stays
    assert other.get("/account").status_code == 302  # the other one ended
    assert audit_rows(app, "password.changed")[0]["detail"]["sessions"] == 1
