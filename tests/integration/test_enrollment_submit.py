"""POST /v1/enrollments and the enrollment form: good input, one test per field rule,
nothing partial stored, duplicates without enumeration."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from services.common import tracking_numbers
from services.identity.enrollment.fingerprint import account_fingerprint
from services.identity.enrollment.models import Enrollment, EnrollmentAccount
from services.identity.models import Company
from tests.integration.helpers.enrollment import PIN, VALID_ACCOUNTS, valid_body
from tests.integration.helpers.identity import events, problem, unseal


@pytest.fixture
def app(enrollment_app):
    return enrollment_app


def count(app, model) -> int:
    with app.extensions["portico"].db.read() as session:
        return session.scalar(select(func.count()).select_from(model))


def test_good_enrollment_is_stored_without_secrets_and_published(app, client):
    response = client.post("/v1/enrollments", json=valid_body())
    assert response.status_code == 201
    body = response.get_json()
    assert set(body) == {"enrollment_id", "tracking_number", "status"}
    assert body["status"] == "submitted" and tracking_numbers.is_valid(body["tracking_number"])
    with app.extensions["portico"].db.read() as session:
        enrollment = session.get(Enrollment, body["enrollment_id"])
        assert enrollment.phone == "+12025550143"
        assert enrollment.email_key == "ana.garcia@example.com"
        assert enrollment.pin_hash.startswith("$argon2id$") and PIN not in enrollment.pin_hash
        assert enrollment.word_hash.startswith("$argon2id$")
        assert enrollment.tax_id == "123456789"
        accounts = session.scalars(select(EnrollmentAccount).order_by(
            EnrollmentAccount.position)).all()
        assert [a.last5 for a in accounts] == ["10005", "98431"]
        key = b"portico-dev-account-fingerprint-key"
        assert accounts[0].fingerprint == account_fingerprint(key, VALID_ACCOUNTS[0])
        company = session.get(Company, enrollment.company_id)
        assert (company.country, company.tax_id_key) == ("US", "123456789")
    [event] = events(app, "identity.enrollment.submitted")
    assert event.tracking_number == body["tracking_number"]
    assert event.data == {"enrollment_id": body["enrollment_id"], "email": "ana.garcia@example.com",
                          "given_name": "Ana", "family_name": "García",
                          "preferred_language": "en", "company_name": "Acme Travel Inc.",
                          "requires_review": False}
    sealed = unseal(app, event)
    assert sealed["verification_url"].startswith("http://127.0.0.1:8001/enroll/verify?token=")
    assert "token" not in event.to_json().replace(event.sealed or "", "")


def test_same_company_is_one_company(app, client):
    client.post("/v1/enrollments", json=valid_body())
    client.post("/v1/enrollments", json=valid_body(email="bo@example.com"))
    assert count(app, Company) == 1 and count(app, Enrollment) == 2


def test_a_later_enrollment_with_the_same_tax_id_never_renames_the_company(app, client):
    first = client.post("/v1/enrollments", json=valid_body()).get_json()
    company = {**valid_body()["company"], "name": "Stranger Holdings"}
    later = client.post("/v1/enrollments", json=valid_body(email="x@example.com",
                                                           company=company)).get_json()
    with app.extensions["portico"].db.read() as session:
        one, two = (session.get(Enrollment, e["enrollment_id"]) for e in (first, later))
        assert one.company_id == two.company_id
        assert session.get(Company, one.company_id).name == "Acme Travel Inc."
        assert two.company_name == "Stranger Holdings"  # what they typed, kept as theirs


BAD_FIELDS = [
    ("given_name", {"given_name": ""}),
    ("family_name", {"family_name": "   "}),
    ("email", {"email": "not-an-email"}),
    ("phone", {"phone": "12"}),
    ("job_title", {"job_title": "x" * 121}),
    ("preferred_language", {"preferred_language": "fr"}),
    ("company.name", {"company": {**valid_body()["company"], "name": ""}}),
    ("company.tax_id", {"company": {**valid_body()["company"], "tax_id": "12-345"}}),
    ("company.address.line1", {"company": {**valid_body()["company"],
                                           "address": {**valid_body()["company"]["address"],
                                                       "line1": ""}}}),
    ("company.address.postal_code", {"company": {**valid_body()["company"],
                                                 "address": {**valid_body()["company"]["address"],
                                                             "postal_code": "!!"}}}),
    ("company.address.country", {"company": {**valid_body()["company"],
                                             "address": {**valid_body()["company"]["address"],
                                                         "country": "XX"}}}),
    ("account_numbers.0", {"account_numbers": ["37828224631000"]}),  # 14 digits
    ("account_numbers.1", {"account_numbers": [VALID_ACCOUNTS[0], "378282246310006"]}),  # Luhn
    ("account_numbers.1", {"account_numbers": [VALID_ACCOUNTS[0], VALID_ACCOUNTS[0]]}),  # twice
    ("account_numbers", {"account_numbers": []}),
    ("pin", {"pin": "12a4"}),
    ("pin", {"pin": "123"}),
    ("pin", {"pin": "7777"}),
    ("pin", {"pin": "3456"}),
    ("pin", {"pin": "9876"}),
    ("verification_word", {"verification_word": "ab"}),
]


@pytest.mark.parametrize(("field", "change"), BAD_FIELDS,
                         ids=[f"{f}-{i}" for i, (f, _) in enumerate(BAD_FIELDS)])
def test_each_bad_field_is_named_and_nothing_is_stored(app, client, field, change):
    response = client.post("/v1/enrollments", json=valid_body(**change))
    assert response.status_code == 422
    errors = problem(response)["errors"]
    assert list(errors) == [field], errors
    assert all(isinstance(m, str) and m for m in errors[field])
    assert count(app, Enrollment) == 0 and count(app, Company) == 0
    assert count(app, EnrollmentAccount) == 0 and events(app) == []


@pytest.mark.parametrize(("country", "good", "bad"), [
    ("MX", "GODE561231GR8", "GODE561231GR"),
    ("ES", "B58818501", "B5881850X"),
    ("ES", "12345678Z", "12345678A"),
    ("FR", "FR40303265045", "F#1"),
])
def test_tax_id_rules_per_country(app, client, country, good, bad):
    address = {**valid_body()["company"]["address"], "country": country}
    company = {**valid_body()["company"], "address": address}
    phone = {"MX": "+52 55 1234 5678", "ES": "+34 912 345 678", "FR": "+33 1 42 68 53 00"}
    ok = client.post("/v1/enrollments", json=valid_body(
        company={**company, "tax_id": good}, phone=phone[country]))
    assert ok.status_code == 201, ok.get_json()
    refused = client.post("/v1/enrollments", json=valid_body(
        company={**company, "tax_id": bad}, phone=phone[country], email="x@example.com"))
    assert list(problem(refused)["errors"]) == ["company.tax_id"]


def test_national_phone_uses_the_company_country(app, client):
    created = client.post("/v1/enrollments", json=valid_body(phone="(202) 555-0143")).get_json()
    with app.extensions["portico"].db.read() as session:
        assert session.get(Enrollment, created["enrollment_id"]).phone == "+12025550143"


def test_several_bad_fields_are_all_reported(client):
    response = client.post("/v1/enrollments", json=valid_body(
        email="nope", pin="1111", account_numbers=["1"]))
    assert set(problem(response)["errors"]) == {"email", "pin", "account_numbers.0"}


def test_unknown_field_and_not_json_are_client_errors(client):
    assert client.post("/v1/enrollments", json=valid_body(admin=True)).status_code == 422
    response = client.post("/v1/enrollments", data="nope", content_type="application/json")
    assert response.status_code == 400 and problem(response)["type"].endswith("bad-request")
    response = client.post("/v1/enrollments", json=valid_body(account_numbers="378282246310005"))
    assert response.status_code == 422


def test_spanish_messages_with_accept_language(client):
    response = client.post("/v1/enrollments", json=valid_body(pin="1111"),
                           headers={"Accept-Language": "es-MX,es;q=0.9"})
    assert problem(response)["errors"]["pin"] == ["El PIN no puede ser un mismo dígito repetido."]


def test_duplicate_pending_enrollment_looks_the_same_and_stores_nothing(app, client):
    first = client.post("/v1/enrollments", json=valid_body())
    second = client.post("/v1/enrollments", json=valid_body(email="ANA.GARCIA@example.com",
                                                             given_name="Eve"))
    assert first.status_code == second.status_code == 201
    a, b = first.get_json(), second.get_json()
    assert set(a) == set(b) and a["status"] == b["status"] == "submitted"
    assert b["enrollment_id"] != a["enrollment_id"]
    assert tracking_numbers.is_valid(b["tracking_number"])
    assert count(app, Enrollment) == 1
    assert len(events(app, "identity.enrollment.submitted")) == 1
    with app.extensions["portico"].db.read() as session:
        assert session.get(Enrollment, b["enrollment_id"]) is None


def test_enrollment_after_the_link_expired_is_a_new_one(app, client, clock):
    client.post("/v1/enrollments", json=valid_body())
    clock.advance(hours=49)
    again = client.post("/v1/enrollments", json=valid_body())
    assert again.status_code == 201
    with app.extensions["portico"].db.read() as session:
        statuses = sorted(e.status.value for e in session.scalars(select(Enrollment)))
    assert statuses == ["expired", "submitted"]
