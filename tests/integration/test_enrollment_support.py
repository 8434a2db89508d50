"""Helpers shared by the enrollment tests (no tests here): an app with enrollment wired,
a valid enrollment body, a controllable clock, and reading sealed secrets from the outbox."""

from __future__ import annotations

import copy
import json
import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select

from services.common.events import Envelope, Sealer
from services.identity.enrollment import models as enrollment_models  # noqa: F401
from services.identity.models import OutboxEvent

VALID_ACCOUNTS = ["378282246310005", "371449635398431"]
PIN = "4071"
WORD = "Ñandú Río"


def valid_body(**changes: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "given_name": "Ana", "family_name": "García", "email": "ana.garcia@example.com",
        "phone": "+1 202 555 0143", "job_title": "Finance manager", "preferred_language": "en",
        "company": {"name": "Acme Travel Inc.", "tax_id": "12-3456789",
                    "address": {"line1": "1 Main St", "city": "Springfield",
                                "region": "IL", "postal_code": "62701", "country": "US"}},
        "account_numbers": list(VALID_ACCOUNTS), "pin": PIN, "verification_word": WORD,
    }
    body.update(copy.deepcopy(changes))
    return body


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@pytest.fixture(name="clock")
def clock_fixture() -> Clock:
    return Clock()


@pytest.fixture(name="app")
def app_fixture(make_app, clock):
    app = make_app("identity")
    app.extensions["enrollment"].clock = clock
    return app


@pytest.fixture(name="client")
def client_fixture(app):
    return app.test_client()


def events(app, type_: str | None = None) -> list[Envelope]:
    with app.extensions["portico"].db.read() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        found = [Envelope.from_json(r.payload) for r in rows]
    return [e for e in found if type_ is None or e.type == type_]


def unseal(app, envelope: Envelope) -> dict[str, Any]:
    return Sealer(app.extensions["portico"].settings.event_sealing_key).unseal(envelope.sealed)


def verification_token(app, enrollment_id: str | None = None) -> str:
    found = [e for e in events(app, "identity.enrollment.submitted")
             if enrollment_id is None or e.data["enrollment_id"] == enrollment_id]
    url = unseal(app, found[-1])["verification_url"]
    return re.search(r"token=([^&]+)", url).group(1)


def access_code(app, enrollment_id: str | None = None) -> str:
    found = [e for e in events(app, "identity.access_code.issued")
             if enrollment_id is None or e.data["enrollment_id"] == enrollment_id]
    return unseal(app, found[-1])["access_code"]


def enroll(client, **changes: Any) -> dict[str, Any]:
    response = client.post("/v1/enrollments", json=valid_body(**changes))
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def enroll_and_verify(app, client, **changes: Any) -> dict[str, Any]:
    created = enroll(client, **changes)
    token = verification_token(app, created["enrollment_id"])
    response = client.post("/v1/enrollments/verify", json={"token": token})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def problem(response) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.data
    return json.loads(response.data)
