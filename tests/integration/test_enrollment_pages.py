"""The whole path through the HTML pages (CSRF included), in English and Spanish, then a
first login; and a scan proving no secret is stored or logged in clear."""

from __future__ import annotations

import json
import re
import unicodedata

import pytest
from sqlalchemy import select

from services.identity.models import Base
from tests.integration.helpers.enrollment import VALID_ACCOUNTS, access_code, verification_token
from tests.integration.helpers.identity import events

PIN = "58209463"
WORD = "Quetzal Dorado"
PASSWORD = "Lantern-Orchid-Meadow-77"
ANSWERS = ("Firulais", "Guadalajara", "Panadero")


@pytest.fixture
def app(enrollment_app):
    return enrollment_app


def csrf(response) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', response.get_data(as_text=True)).group(1)


def enrollment_form(token: str, **changes) -> dict:
    form = {"csrf_token": token, "given_name": "Lucía", "family_name": "Pérez",
            "email": "lucia@example.mx", "phone": "+52 55 1234 5678", "job_title": "Tesorera",
            "preferred_language": "es", "company_name": "Viajes del Sur SA de CV",
            "tax_id": "GODE561231GR8", "address_line1": "Av. Reforma 1", "city": "CDMX",
            "postal_code": "06600", "country": "MX", "pin": PIN, "verification_word": WORD,
            "account_numbers": VALID_ACCOUNTS + [""]}
    form.update(changes)
    return form


def run_pages(app, client, lang: str):
    page = client.get(f"/enroll?ui_locales={lang}")
    assert page.status_code == 200
    done = client.post(f"/enroll?ui_locales={lang}", data=enrollment_form(csrf(page)))
    assert done.status_code == 201, done.get_data(as_text=True)
    text = done.get_data(as_text=True)
    tracking = re.search(r'data-testid="tracking-number">([^<]+)<', text).group(1)
    token = verification_token(app)
    confirm = client.get(f"/enroll/verify?token={token}")
    verified = client.post("/enroll/verify", data={"csrf_token": csrf(confirm), "token": token})
    assert verified.status_code == 200
    activate_page = client.get(f"/activate?ui_locales={lang}")
    moved = client.post(f"/activate?ui_locales={lang}", data={
        "csrf_token": csrf(activate_page), "access_code": access_code(app), "pin": PIN,
        "verification_word": WORD.upper()})
    assert moved.status_code == 303 and "/activate/credentials" in moved.headers["Location"]
    form_page = client.get(moved.headers["Location"])
    assert form_page.status_code == 200
    finished = client.post(moved.headers["Location"], data={
        "csrf_token": csrf(form_page), "username": "lucia.perez", "password": PASSWORD,
        "password_confirm": PASSWORD, "question_1": "first_pet", "answer_1": ANSWERS[0],
        "question_2": "birth_city", "answer_2": ANSWERS[1], "question_3": "first_job",
        "answer_3": ANSWERS[2]})
    assert finished.status_code == 201, finished.get_data(as_text=True)
    return tracking, text, verified.get_data(as_text=True), finished.get_data(as_text=True)


def test_full_path_through_the_pages_in_spanish_then_login(app, client):
    tracking, enrolled, verified, finished = run_pages(app, client, "es")
    assert "Inscripción recibida" in enrolled and 'lang="es"' in enrolled
    assert "Correo electrónico confirmado" in verified
    assert "Su ID de usuario está activo" in finished and tracking in finished
    assert [e.type for e in events(app)] == [
        "identity.enrollment.submitted", "identity.enrollment.verified",
        "identity.access_code.issued", "identity.user.activated"]
    assert {e.tracking_number for e in events(app)} == {tracking}
    assert events(app)[0].data["preferred_language"] == "es"
    # A first login with the new credentials (identity's own login page).
    login_page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf(login_page),
                                           "username": "LUCIA.perez", "password": PASSWORD})
    assert response.status_code == 303


def test_english_pages_by_accept_language(app, client):
    page = client.get("/enroll", headers={"Accept-Language": "en-GB"})
    assert "Enroll as an account manager" in page.get_data(as_text=True)
    page = client.get("/enroll", headers={"Accept-Language": "es-ES,es"})
    assert "Inscríbase como administrador de cuentas" in page.get_data(as_text=True)
    page = client.get("/enroll?ui_locales=en", headers={"Accept-Language": "es"})
    assert "Enroll as an account manager" in page.get_data(as_text=True)


def test_form_errors_are_shown_beside_each_field(app, client):
    page = client.get("/enroll?ui_locales=en")
    response = client.post("/enroll?ui_locales=en", data=enrollment_form(
        csrf(page), tax_id="NOPE", pin="1234", account_numbers=[VALID_ACCOUNTS[0], "123"]))
    assert response.status_code == 422
    html = response.get_data(as_text=True)
    assert re.search(r'id="tax_id-error">Enter a valid RFC\.<', html)
    assert re.search(r'id="pin-error">The PIN must not be a run of consecutive digits\.<', html)
    assert re.search(r'id="account_numbers\.1-error">An account number has 15 digits\.<', html)
    assert 'aria-invalid="true" aria-describedby="tax_id-error"' in html
    assert PIN not in html and "1234" not in html.replace("1234 5678", "")
    assert events(app) == []


def test_forms_without_the_csrf_token_are_refused(app, client):
    client.get("/enroll")
    response = client.post("/enroll", data=enrollment_form("forged"))
    assert response.status_code == 400 and events(app) == []
    assert client.post("/activate", data={"csrf_token": "x", "access_code": "A",
                                          "pin": "1", "verification_word": "w"}).status_code == 400
    # Without a successful activation the credentials page sends you back.
    assert client.get("/activate/credentials").status_code == 303


def test_no_secret_in_any_table_or_log_line(app, client, caplog, capsys):
    run_pages(app, client, "en")
    code = access_code(app)
    secrets = {PIN, WORD, WORD.casefold(), PASSWORD, code, code.replace("-", ""),
               *VALID_ACCOUNTS, *ANSWERS, *(a.casefold() for a in ANSWERS),
               unicodedata.normalize("NFKC", WORD).casefold()}
    db = app.extensions["portico"].db
    with db.read() as session:
        dump = []
        for table in Base.metadata.sorted_tables:
            for row in session.execute(select(table)).all():
                values = dict(row._mapping)
                if table.name == "outbox":
                    envelope = json.loads(values["payload"])
                    assert envelope["sealed"] is None or envelope["type"] in (
                        "identity.enrollment.submitted", "identity.access_code.issued")
                dump.append(json.dumps(values, default=str))
    text = "\n".join(dump)
    logs = caplog.text + capsys.readouterr().err
    for secret in secrets:
        assert secret not in text, f"{secret!r} stored in clear"
        assert secret not in logs, f"{secret!r} logged"
