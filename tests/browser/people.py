"""Test people and companies, and an activated user made through identity's JSON API (for
the parts of a browser test that are set-up, e.g. the principal administrator)."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

import requests

from .suite import Suite, access_code_in, link_in

PIN = "4071"
WORD = "Ñandú"
ANSWERS = {"first_pet": "Rex", "birth_city": "Toluca", "first_school": "Benito Juarez"}


def luhn_account() -> str:
    """A 15-digit, Luhn-valid account number."""
    digits = [3, 7] + [random.randint(0, 9) for _ in range(12)]  # noqa: S311 - test data
    total = 0
    for index, digit in enumerate(reversed(digits)):
        doubled = digit * 2 if index % 2 == 0 else digit
        total += doubled - 9 if doubled > 9 else doubled
    return "".join(map(str, digits)) + str((10 - total % 10) % 10)


@dataclass(frozen=True)
class Company:
    name: str
    tax_id: str

    @classmethod
    def new(cls) -> Company:
        return cls(name=f"Acme Travel {uuid.uuid4().hex[:6]}",
                   tax_id=f"12-{random.randint(1000000, 9999999)}")  # noqa: S311 - test data


@dataclass
class Person:
    given_name: str
    family_name: str
    company: Company
    language: str = "en"
    tag: str = field(default_factory=lambda: uuid.uuid4().hex[:8])
    account: str = field(default_factory=luhn_account)
    password: str = field(default_factory=lambda: f"Velvet-Harbor-{random.randint(100, 999)}!")  # noqa: S311
    user_id: str | None = None
    tracking_number: str | None = None

    @property
    def email(self) -> str:
        return f"{self.given_name.lower()}.{self.tag}@example.com"

    @property
    def username(self) -> str:
        return f"{self.given_name.lower()}.{self.tag}"

    def enrollment(self) -> dict:
        return {
            "given_name": self.given_name, "family_name": self.family_name,
            "email": self.email, "phone": "+1 202 555 0143", "job_title": "Finance manager",
            "preferred_language": self.language,
            "company": {"name": self.company.name, "tax_id": self.company.tax_id,
                        "address": {"line1": "1 Main St", "city": "Springfield", "region": "IL",
                                    "postal_code": "62701", "country": "US"}},
            "account_numbers": [self.account], "pin": PIN, "verification_word": WORD}


def activate_through_api(suite: Suite, person: Person) -> Person:
    """Enroll, confirm the email, first login and credentials, as a script would."""
    base = suite.identity
    created = requests.post(f"{base}/v1/enrollments", json=person.enrollment(), timeout=10)
    assert created.status_code == 201, created.text
    person.tracking_number = created.json()["tracking_number"]
    link = link_in(suite.mail(person.email, subject(person, "confirm")), "/enroll/verify")
    token = link.split("token=", 1)[1].split("&", 1)[0]
    verified = requests.post(f"{base}/v1/enrollments/verify", json={"token": token}, timeout=10)
    assert verified.status_code == 200 and verified.json()["status"] == "code_issued", verified.text
    code = access_code_in(suite.mail(person.email, subject(person, "welcome")))
    ticket = requests.post(f"{base}/v1/activation", timeout=10, json={
        "access_code": code, "pin": PIN, "verification_word": WORD})
    assert ticket.status_code == 200, ticket.text
    done = requests.post(f"{base}/v1/activation/credentials", timeout=10, json={
        "activation_token": ticket.json()["activation_token"], "username": person.username,
        "password": person.password, "password_confirm": person.password,
        "security_questions": [{"question": k, "answer": v} for k, v in ANSWERS.items()]})
    assert done.status_code == 201, done.text
    person.user_id = done.json()["user_id"]
    return person


SUBJECTS = {
    "en": {"confirm": "Confirm your email", "welcome": "Access Code",
           "reset": "Reset your password", "approved": "Access request approved",
           "deactivated": "Your user ID has been deactivated"},
    "es": {"confirm": "Confirme su correo", "welcome": "Código de Acceso",
           "reset": "Restablezca su contraseña",
           "approved": "Solicitud de autorizaciones aprobada",
           "deactivated": "Su nombre de usuario ha sido desactivado"},
}


def subject(person: Person, which: str) -> str:
    """The subject (or a part of it) of an email ``person`` gets, in their language."""
    return SUBJECTS[person.language][which]
