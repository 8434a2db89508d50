"""/v1/me and /account: profile fields, preferences, re-verified email change, password."""

from __future__ import annotations

import json
import re
import time

import pytest

from services.identity.lifecycle.models import UserProfile
from tests.integration.helpers.identity import events, problem, unseal
from tests.integration.helpers.lifecycle import (
    PASSWORD,
    add_user,
    audit_rows,
    csrf_of,
    login,
    user_row,
)

NEW = "Quiet-Lantern-77#"


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


@pytest.fixture
def me(app, token_issuer):
    """A user and a bearer token of a sign-in just now (``auth_time``)."""
    user_id = add_user(app, email="ana@example.com")
    token = token_issuer.issue(sub=user_id, aud="identity", scope="openid profile",
                               auth_time=int(time.time()))
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


@pytest.mark.parametrize("auth_time", ["ten minutes ago", "absent"])
def test_an_email_change_by_api_needs_a_sign_in_within_five_minutes(
        app, client, me, token_issuer, auth_time):
    """Issue 24: changing the email address needed no recent sign-in. RFC 9470's answer
    tells the client to sign the user in again (max_age)."""
    user_id, _fresh = me
    claims = {} if auth_time == "absent" else {"auth_time": int(time.time()) - 600}
    stale = {"Authorization": "Bearer " + token_issuer.issue(
        sub=user_id, aud="identity", scope="openid profile", **claims)}
    refused = client.patch("/v1/me", headers=stale, json={"email": "thief@example.com"})
    assert refused.status_code == 401
    assert problem(refused)["type"].endswith("insufficient-user-authentication")
    challenge = refused.headers["WWW-Authenticate"]
    assert 'error="insufficient_user_authentication"' in challenge and 'max_age="300"' in challenge
    assert events(app, "identity.contact.change_requested") == []
    # Other fields need no fresh sign-in; nor does the address already on file.
    for harmless in ({"phone": "+1 202 555 0143"}, {"email": "ana@example.com"}):
        assert client.patch("/v1/me", headers=stale, json=harmless).status_code == 200
    assert events(app, "identity.contact.change_requested") == []


def _age_login_session(app, client, seconds: int) -> None:
    """Make the browser's login session as if its sign-in was ``seconds`` ago."""
    from services.common.streams import key

    ctx = app.extensions["portico"]
    sid = client.get_cookie("portico_session").value
    session_key = key(ctx.settings.redis_namespace, "session", sid)
    stored = json.loads(ctx.redis.get(session_key))
    stored["auth_time"] -= seconds
    ctx.redis.set(session_key, json.dumps(stored), keepttl=True)


def test_the_account_page_asks_for_the_password_again_before_an_email_change(app, client):
    """Issue 24: an open session older than 5 minutes could change the email address."""
    add_user(app)
    login(client)
    _age_login_session(app, client, 600)
    page = client.get("/account")
    form = {"job_title": "Analyst", "phone": "+1 202 555 0143", "preferred_language": "en",
            "email": "ana.new@example.com", "csrf_token": csrf_of(page.text)}
    asked = client.post("/account", data=form)
    assert asked.status_code == 401
    assert 'name="current_password"' in asked.text and "ana.new@example.com" in asked.text
    wrong = client.post("/account", data={**form, "current_password": "not-my-password"})
    assert wrong.status_code == 401 and "not correct" in wrong.text
    assert events(app, "identity.contact.change_requested") == []
    # The address on file with other changes: no password needed.
    kept = client.post("/account", data={**form, "email": "ana.garcia@example.com",
                                         "job_title": "Controller"})
    assert kept.status_code == 200
    confirmed = client.post("/account", data={**form, "current_password": PASSWORD})
    assert confirmed.status_code == 200
    [requested] = events(app, "identity.contact.change_requested")
    assert requested.data["new_email"] == "ana.new@example.com"


def test_a_fresh_sign_in_changes_the_email_without_asking_again(app, client):
    add_user(app)
    login(client)
    page = client.get("/account")
    saved = client.post("/account", data={
        "job_title": "Analyst", "phone": "+1 202 555 0143", "preferred_language": "en",
        "email": "ana.new@example.com", "csrf_token": csrf_of(page.text)})
    assert saved.status_code == 200 and 'name="current_password"' not in saved.text.split(
        "Change your password")[0]
    assert len(events(app, "identity.contact.change_requested")) == 1
