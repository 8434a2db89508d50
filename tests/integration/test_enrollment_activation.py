"""Verification link, access codes (expiry, re-issue, review), activation and lockout."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from services.identity.enrollment.models import AccessCode, Enrollment
from services.identity.models import SecurityAnswer, User
from tests.integration.helpers.enrollment import (
    PIN,
    WORD,
    access_code,
    enroll,
    enroll_and_verify,
    verification_token,
)
from tests.integration.helpers.identity import events, problem
from tests.support import give_signing_keys


@pytest.fixture
def app(enrollment_app):
    return enrollment_app


@pytest.fixture
def helpdesk(token_issuer):
    token = token_issuer.issue(sub="agent-7", client_id="agent-7", aud="identity",
                               scope="iam.helpdesk")
    return {"Authorization": f"Bearer {token}"}


def credentials_body(token: str, **changes):
    body = {"activation_token": token, "username": "ana.garcia", "password": "Velvet-Harbor-42!",
            "password_confirm": "Velvet-Harbor-42!",
            "security_questions": [{"question": "first_pet", "answer": "Rex"},
                                   {"question": "birth_city", "answer": "Toluca"},
                                   {"question": "first_job", "answer": "Cashier"}]}
    body.update(changes)
    return body


def activate(client, code, pin=PIN, word=WORD):
    return client.post("/v1/activation", json={"access_code": code, "pin": pin,
                                                "verification_word": word})


def status_of(app, enrollment_id):
    with app.extensions["portico"].db.read() as session:
        return session.get(Enrollment, enrollment_id).status.value


def test_link_verifies_once_and_issues_an_access_code(app, client):
    created = enroll(client, preferred_language="es")
    token = verification_token(app)
    response = client.post("/v1/enrollments/verify", json={"token": token})
    assert response.get_json()["status"] == "code_issued"
    [verified] = events(app, "identity.enrollment.verified")
    [issued] = events(app, "identity.access_code.issued")
    assert verified.data["preferred_language"] == issued.data["preferred_language"] == "es"
    assert issued.data["reissued"] is False and issued.tracking_number == created["tracking_number"]
    code = access_code(app)
    assert len(code) == 19 and code.count("-") == 3
    assert not set(code.replace("-", "")) & set("ILOUZ")
    again = client.post("/v1/enrollments/verify", json={"token": token})
    assert again.status_code == 400 and problem(again)["type"].endswith("verification-link-invalid")


def test_expired_link_does_not_verify(app, client, clock):
    created = enroll(client)
    clock.advance(hours=48, seconds=1)
    response = client.post("/v1/enrollments/verify", json={"token": verification_token(app)})
    assert response.status_code == 400
    assert status_of(app, created["enrollment_id"]) == "expired"
    assert events(app, "identity.access_code.issued") == []


def test_full_api_activation_creates_an_active_user(app, client):
    verified = enroll_and_verify(app, client)
    response = activate(client, access_code(app).lower().replace("-", " "))
    assert response.status_code == 200
    ticket = response.get_json()["activation_token"]
    done = client.post("/v1/activation/credentials", json=credentials_body(ticket))
    assert done.status_code == 201, done.get_json()
    body = done.get_json()
    assert body["tracking_number"] == verified["tracking_number"]
    with app.extensions["portico"].db.read() as session:
        user = session.get(User, body["user_id"])
        assert user.status.value == "active" and user.email_verified
        assert user.username_key == "ana.garcia" and user.phone_number == "+12025550143"
        enrollment = session.get(Enrollment, verified["enrollment_id"])
        assert user.company_id == enrollment.company_id and enrollment.user_id == user.id
        company_id = user.company_id
        answers = session.scalars(select(SecurityAnswer)).all()
        assert len(answers) == 3 and all(a.answer_hash.startswith("$argon2id$") for a in answers)
        assert session.scalar(select(AccessCode.used_at)) is not None
    [activated] = events(app, "identity.user.activated")
    assert activated.subject == body["user_id"] and activated.company_id == company_id
    assert activated.data["accounts"][0]["last5"] == "10005"
    assert len(activated.data["accounts"][0]["fingerprint"]) == 64
    assert activated.data["notifications"] == {"status_changes": True}
    assert set(activated.data) >= {"user_id", "enrollment_id", "email", "given_name",
                                   "family_name", "phone", "job_title", "preferred_language",
                                   "company_id", "company_name", "accounts"}
    # The code is single-use: the same trio no longer works.
    assert activate(client, access_code(app)).status_code == 400


def test_word_is_case_and_normalisation_insensitive(app, client):
    enroll_and_verify(app, client)
    assert activate(client, access_code(app), word="  ÑANDÚ   río ").status_code == 200
    # NFD input (decomposed accents) is the same word after NFKC.
    import unicodedata

    nfd = unicodedata.normalize("NFD", WORD)
    assert activate(client, access_code(app), word=nfd).status_code == 200


@pytest.mark.parametrize("wrong", ["pin", "word", "code"])
def test_failures_look_the_same_whichever_secret_is_wrong(app, client, wrong):
    enroll_and_verify(app, client)
    code = access_code(app)
    args = {"pin": "9999" if wrong == "pin" else PIN,
            "word": "other" if wrong == "word" else WORD}
    if wrong == "code":
        code = "ABCD-EFGH-JKMN-PQRS"
    body = problem(activate(client, code, **args))
    assert body["type"].endswith("activation-refused") and "errors" not in body
    assert "PIN" in body["detail"] and "Word" in body["detail"] and "Code" in body["detail"]


def test_five_failures_lock_and_the_help_desk_unlocks(app, client, helpdesk):
    verified = enroll_and_verify(app, client)
    code = access_code(app)
    for _ in range(5):
        assert activate(client, code, pin="9999").status_code == 400
    assert status_of(app, verified["enrollment_id"]) == "locked"
    [locked] = events(app, "identity.enrollment.locked")
    assert locked.data["enrollment_id"] == verified["enrollment_id"]
    refused = activate(client, code)  # right secrets, but locked: same answer
    assert problem(refused)["type"].endswith("activation-refused")
    unlocked = client.post(f"/admin/v1/enrollments/{verified['enrollment_id']}/unlock",
                           headers=helpdesk)
    assert unlocked.status_code == 200 and unlocked.get_json()["status"] == "code_issued"
    assert activate(client, code).status_code == 200
    again = client.post(f"/admin/v1/enrollments/{verified['enrollment_id']}/unlock",
                        headers=helpdesk)
    assert again.status_code == 409


def test_code_expiry_and_reissue_voids_the_old_code(app, client, clock, helpdesk):
    verified = enroll_and_verify(app, client)
    old = access_code(app)
    clock.advance(days=14, seconds=1)
    expired = activate(client, old)
    assert problem(expired)["type"].endswith("access-code-expired")
    assert status_of(app, verified["enrollment_id"]) == "expired"
    response = client.post(f"/admin/v1/enrollments/{verified['enrollment_id']}/access-code",
                           headers=helpdesk)
    assert response.status_code == 200 and response.get_json()["status"] == "code_issued"
    new = access_code(app)
    assert new != old and events(app, "identity.access_code.issued")[-1].data["reissued"]
    assert problem(activate(client, old))["type"].endswith("activation-refused")
    assert activate(client, new).status_code == 200


def test_reissue_while_code_is_live_voids_it(app, client, helpdesk):
    verified = enroll_and_verify(app, client)
    old = access_code(app)
    client.post(f"/admin/v1/enrollments/{verified['enrollment_id']}/access-code", headers=helpdesk)
    assert activate(client, old).status_code == 400
    assert activate(client, access_code(app)).status_code == 200


def test_company_review_holds_the_code_until_the_help_desk_approves(make_app, clock, helpdesk):
    app = make_app("identity", enrollment_review_companies=["US:123456789"])
    app.extensions["portico"].clock = clock
    client = app.test_client()
    created = enroll(client)
    assert events(app, "identity.enrollment.submitted")[0].data["requires_review"] is True
    verified = client.post("/v1/enrollments/verify", json={"token": verification_token(app)})
    assert verified.get_json()["status"] == "in_review"
    assert events(app, "identity.access_code.issued") == []
    url = f"/admin/v1/enrollments/{created['enrollment_id']}/approve"
    assert client.post(url).status_code == 401
    approved = client.post(url, headers=helpdesk)
    assert approved.status_code == 200 and approved.get_json()["status"] == "code_issued"
    assert activate(client, access_code(app)).status_code == 200
    assert client.post(url, headers=helpdesk).status_code == 409


def test_credentials_rules(app, client):
    enroll_and_verify(app, client)
    ticket = activate(client, access_code(app)).get_json()["activation_token"]

    def errors(**changes):
        response = client.post("/v1/activation/credentials", json=credentials_body(ticket, **changes))
        assert response.status_code == 422, response.get_json()
        return problem(response)["errors"]

    assert "password" in errors(password="short-1", password_confirm="short-1")
    assert "password" in errors(password="qwertyuiop123", password_confirm="qwertyuiop123")
    assert "password" in errors(password="my-ana.garcia-pass", password_confirm="my-ana.garcia-pass")
    assert "password_confirm" in errors(password_confirm="Velvet-Harbor-43!")
    assert "username" in errors(username="a!")
    assert "security_questions" in errors(security_questions=[
        {"question": "first_pet", "answer": "Rex"}, {"question": "first_pet", "answer": "Max"},
        {"question": "first_job", "answer": "Cook"}])
    assert "security_questions.1.question" in errors(security_questions=[
        {"question": "first_pet", "answer": "Rex"}, {"question": "nope", "answer": "Max"},
        {"question": "first_job", "answer": "Cook"}])
    # Still usable after the mistakes, then not again.
    assert client.post("/v1/activation/credentials",
                       json=credentials_body(ticket)).status_code == 201
    again = client.post("/v1/activation/credentials", json=credentials_body(ticket))
    assert problem(again)["type"].endswith("activation-expired")


def test_username_is_unique_case_insensitively(app, client):
    enroll_and_verify(app, client)
    ticket = activate(client, access_code(app)).get_json()["activation_token"]
    assert client.post("/v1/activation/credentials",
                       json=credentials_body(ticket)).status_code == 201
    enroll_and_verify(app, client, email="bo@example.com")
    ticket = activate(client, access_code(app)).get_json()["activation_token"]
    response = client.post("/v1/activation/credentials",
                           json=credentials_body(ticket, username="ANA.Garcia"))
    assert list(problem(response)["errors"]) == ["username"]


def test_activation_ticket_expires(app, client, clock):
    enroll_and_verify(app, client)
    ticket = activate(client, access_code(app)).get_json()["activation_token"]
    clock.advance(minutes=16)
    response = client.post("/v1/activation/credentials", json=credentials_body(ticket))
    assert problem(response)["type"].endswith("activation-expired")


def test_admin_endpoints_need_the_helpdesk_scope(app, client, token_issuer, permissions_answers):
    give_signing_keys(app)
    created = enroll(client)
    token = token_issuer.issue(sub="u", aud="identity", scope="openid")
    response = client.get(f"/admin/v1/enrollments/{created['enrollment_id']}",
                          headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 403
    assert client.get("/admin/v1/enrollments/x").status_code == 401
