"""Helpers of the enrollment tests: a valid enrollment body, enrolling, and the secrets
identity mails (read from its outbox). The app is ``enrollment_app`` in
tests/integration/fixtures/identity.py."""

from __future__ import annotations

import copy
import re
from typing import Any

from tests.integration.helpers.identity import events, unseal

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
