"""The help desk and a user's second factors: the list shows no secret; the reset needs
the help-desk power and a why, removes the app, the recovery codes and the passkeys,
is audited, tracked and published, lets the user sign in with the password alone, and
emails the user."""

from __future__ import annotations

import base64
import json

import pytest
from sqlalchemy import select

from services.common import tracking_numbers
from services.identity import audit
from services.identity.factors import passkeys
from services.identity.factors.models import RecoveryCode, TotpFactor
from services.identity.factors.passkey_models import WebauthnCredential
from services.identity.models import User
from tests.integration.helpers.factors import set_up_totp
from tests.integration.helpers.identity import events, problem
from tests.integration.helpers.lifecycle import (
    add_user,
    assert_helpdesk_action,
    audit_rows,
    csrf_of,
    login,
)
from tests.support import give_signing_keys
from tests.support_webauthn import SoftAuthenticator

WHY = {"why": "caller lost the phone, identity checked by callback, ticket 5120"}


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


def _add_passkey(app, user_id: str, name: str) -> SoftAuthenticator:
    settings = app.extensions["portico"].settings
    cfg = passkeys.config_from(settings)
    authenticator = SoftAuthenticator(settings.webauthn_origins[0])
    actor = audit.Actor("user", user_id)
    with app.extensions["portico"].db.transaction() as session:
        options = passkeys.registration_options(session, cfg, session.get(User, user_id), "sid")
    with app.extensions["portico"].db.transaction() as session:
        passkeys.register(session, cfg, session.get(User, user_id), "sid",
                          authenticator.create(options), name, actor)
    return authenticator


def _with_every_factor(app) -> tuple[str, str, list[str], SoftAuthenticator]:
    """A user with an authenticator app, its recovery codes and a passkey, signed out."""
    user_id = add_user(app)
    browser = app.test_client()
    login(browser)
    secret, codes = set_up_totp(browser)
    authenticator = _add_passkey(app, user_id, "Work laptop")
    return user_id, secret, codes, authenticator


def _rows(app, model, user_id: str) -> int:
    with app.extensions["portico"].db.read() as session:
        return len(session.scalars(select(model).where(model.user_id == user_id)).all())


def test_the_list_shows_every_kind_and_no_secret(app, client, agent):
    user_id, secret, codes, authenticator = _with_every_factor(app)
    answer = client.get(f"/admin/v1/users/{user_id}/factors", headers=agent)
    assert answer.status_code == 200, answer.text
    assert "no-store" in answer.headers["Cache-Control"]
    listed = answer.get_json()
    assert listed["user_id"] == user_id
    assert listed["totp"]["confirmed_at"] and listed["totp"]["last_used_at"]
    assert listed["recovery_codes"]["remaining"] == 10 and listed["recovery_codes"]["created_at"]
    [passkey] = listed["passkeys"]
    assert passkey["name"] == "Work laptop" and passkey["created_at"]
    assert "last_used_at" in passkey
    with app.extensions["portico"].db.read() as session:
        stored = session.scalars(select(WebauthnCredential)).one()
        credential_id, public_key = stored.credential_id, stored.public_key
        hashes = session.scalars(select(RecoveryCode.code_hash)).all()
        sealed = session.get(TotpFactor, user_id).secret_encrypted
    text = answer.text
    assert secret not in text and sealed not in text
    assert not any(code in text or code.replace("-", "") in text for code in codes)
    assert not any(digest in text for digest in hashes)
    assert credential_id not in text and authenticator.id not in text
    assert "public_key" not in passkey
    assert public_key.hex() not in text and base64.b64encode(public_key).decode() not in text
    assert base64.urlsafe_b64encode(public_key).decode().rstrip("=") not in text


def test_a_user_without_factors_lists_none(app, client, agent):
    user_id = add_user(app)
    listed = client.get(f"/admin/v1/users/{user_id}/factors", headers=agent).get_json()
    assert listed == {"user_id": user_id, "totp": None, "recovery_codes": None, "passkeys": []}
    unknown = client.get("/admin/v1/users/nope/factors", headers=agent)
    assert unknown.status_code == 404 and problem(unknown)["status"] == 404


def test_the_list_and_the_reset_need_the_helpdesk_power(app, client, token_issuer,
                                                        permissions_answers):
    give_signing_keys(app)
    user_id, *_ = _with_every_factor(app)
    plain = {"Authorization": "Bearer " + token_issuer.issue(sub="u1", aud="identity",
                                                             scope="profile")}
    assert client.get(f"/admin/v1/users/{user_id}/factors").status_code == 401
    assert client.get(f"/admin/v1/users/{user_id}/factors", headers=plain).status_code == 403
    refused = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY, headers=plain)
    assert refused.status_code == 403 and problem(refused)["status"] == 403
    assert _rows(app, TotpFactor, user_id) == 1


def test_the_reset_needs_a_why(app, client, agent):
    user_id, *_ = _with_every_factor(app)
    for body in ({}, {"why": "   "}):
        answer = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=body,
                             headers=agent)
        assert answer.status_code == 422 and "why" in problem(answer)["errors"]
    assert audit_rows(app, "factors.reset") == []
    assert _rows(app, WebauthnCredential, user_id) == 1


def test_the_reset_removes_every_factor_audited_tracked_and_published(app, client, agent):
    user_id, secret, codes, _ = _with_every_factor(app)
    added = len(events(app))
    answer = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY, headers=agent)
    assert answer.status_code == 200, answer.text
    body = answer.get_json()
    tracking = body["tracking_number"]
    assert tracking_numbers.is_valid(tracking)
    assert body["removed"] == {"totp": 1, "recovery_codes": 10, "passkeys": 1}
    for model in (TotpFactor, RecoveryCode, WebauthnCredential):
        assert _rows(app, model, user_id) == 0, model
    [row] = audit_rows(app, "factors.reset")
    assert row["actor_type"] == "helpdesk" and row["actor_id"] == "agent-7"
    assert row["subject_id"] == user_id and row["tracking_number"] == tracking
    assert row["detail"] == {"why": WHY["why"], "removed": body["removed"],
                             "signed_out": body["signed_out"]}
    published = events(app)[added:]
    assert [e.type for e in published] == ["identity.factors.reset", "identity.helpdesk.action"]
    reset, _ = published
    assert reset.subject == user_id and reset.tracking_number == tracking
    assert reset.data["removed"] == body["removed"] and reset.data["actor_id"] == "agent-7"
    assert reset.data["email"] == "ana.garcia@example.com"
    recorded = json.dumps(row, default=str) + reset.to_json()
    assert secret not in recorded and not any(code in recorded for code in codes)


def test_the_reset_is_a_helpdesk_action_like_the_others(app, client, agent):
    """Audited as ``helpdesk.factors_reset`` and published as ``identity.helpdesk.action``
    (who, why, the reset's tracking number), as reactivate, unlock or disable are."""
    user_id, *_ = _with_every_factor(app)
    answer = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY, headers=agent)
    tracking = answer.get_json()["tracking_number"]
    assert_helpdesk_action(app, user_id, "factors_reset", WHY["why"], tracking)
    [action] = events(app, "identity.helpdesk.action")
    assert action.tracking_number == tracking
    assert set(action.data) == {"actor_id", "action", "why"}


def test_after_the_reset_the_password_alone_signs_in(app, client, agent):
    user_id, *_ = _with_every_factor(app)
    assert login(client).headers["Location"].startswith("/login/second-factor")
    client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY, headers=agent)
    browser = app.test_client()
    assert login(browser).headers["Location"] == "/account"


def test_a_user_without_factors_is_a_conflict(app, client, agent):
    user_id = add_user(app)
    answer = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY, headers=agent)
    assert answer.status_code == 409
    assert "no second factor" in problem(answer)["detail"]
    assert audit_rows(app, "factors.reset") == [] and events(app, "identity.factors.reset") == []
    assert audit_rows(app, "helpdesk.factors_reset") == []
    assert events(app, "identity.helpdesk.action") == []
    unknown = client.post("/admin/v1/users/nope/factors/reset", json=WHY, headers=agent)
    assert unknown.status_code == 404


@pytest.mark.parametrize("lang", ["en", "es"])
def test_the_notifier_emails_the_user(app, client, agent, notifier, lang):
    user_id, *_ = _with_every_factor(app)
    with app.extensions["portico"].db.transaction() as session:
        session.get(User, user_id).preferred_language = lang
    tracking = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY,
                           headers=agent).get_json()["tracking_number"]
    notifier.publish(*events(app, "identity.factors.reset"))
    notifier.consume()
    notifier.deliver_all()
    [row] = notifier.messages()
    assert (row.template, row.recipient, row.language) == (
        "factors_reset", "ana.garcia@example.com", lang)
    [email] = notifier.sink.messages
    text = email.get_body(("plain",)).get_content()
    html = email.get_body(("html",)).get_content()
    for body in (text, html):
        assert tracking in body and "800 555 0199" in body
    if lang == "en":
        assert "help desk" in text and "next sign-in" in text
    else:
        assert "mesa de ayuda" in text and "próxima vez" in text


def test_openapi_describes_both_endpoints(client):
    spec = client.get("/openapi.json").get_json()
    listing = spec["paths"]["/admin/v1/users/{user_id}/factors"]["get"]
    reset = spec["paths"]["/admin/v1/users/{user_id}/factors/reset"]["post"]
    for operation, errors in ((listing, {"401", "403", "404"}),
                              (reset, {"401", "403", "404", "409", "422"})):
        assert operation["security"] and "200" in operation["responses"]
        assert errors <= set(operation["responses"])
    assert "requestBody" in reset and "requestBody" not in listing



def test_the_reset_signs_the_user_out_everywhere(app, client, agent):
    """A reset usually follows a lost phone or laptop, which may still be signed in."""
    user_id, _, codes, _ = _with_every_factor(app)
    kept = app.test_client()
    login(kept)
    page = kept.get("/login/second-factor", query_string={"next": "/account"})
    kept.post("/login/second-factor", data={"code": codes[0], "csrf_token": csrf_of(page.text),
                                            "next": "/account"})
    assert kept.get("/account").status_code == 200  # signed in on the "lost" device
    answer = client.post(f"/admin/v1/users/{user_id}/factors/reset", json=WHY, headers=agent)
    assert answer.status_code == 200, answer.text
    assert answer.get_json()["signed_out"]["sessions"] >= 1
    assert kept.get("/account").status_code == 302  # back to the login
