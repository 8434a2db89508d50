"""Helpers of the lifecycle tests: wiring enrollment and the lifecycle into identity, users
with security answers, login, and the audit log. The app is ``lifecycle_app`` in
tests/integration/fixtures/identity.py."""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import select

from services.identity import enrollment, lifecycle
from services.identity.enrollment.codes import hash_secret, normalize_answer
from services.identity.models import AuditEvent, SecurityAnswer, User
from services.identity.service import NewUser, create_user
from tests.integration.helpers.identity import Clock, events
from tests.support import give_signing_keys

PASSWORD = "Velvet-Harbor-42!"
ANSWERS = {"first_pet": "Rex", "birth_city": "Toluca", "first_job": "Cashier"}


def wire(app, clock: Clock | None = None):
    if "enrollment" not in app.blueprints:
        enrollment.init_app(app)
    if "lifecycle_recovery" not in app.blueprints:
        lifecycle.init_app(app)
    if clock is not None:
        app.extensions["portico"].clock = clock
    return app


def signing_identity(make_app, clock: Clock, **settings: Any):
    """Identity wired as for the lifecycle tests (on ``clock``), that signs tokens at once
    (signing keys made, no activation delay): for flows that end in an ID token."""
    app = wire(make_app("identity", session_cookie_secure=False, key_activation_delay=0,
                        **settings), clock)
    give_signing_keys(app)
    return app


def add_user(app, username: str = "ana.garcia", *, email: str | None = None,
             company_id: str | None = "acme", language: str = "en", clock: Clock | None = None,
             answers: dict[str, str] | None = None, given_name: str = "Ana",
             family_name: str = "García") -> str:
    with app.extensions["portico"].db.transaction() as session:
        user = create_user(session, NewUser(
            username=username, password=PASSWORD, email=email or f"{username}@example.com",
            given_name=given_name, family_name=family_name, company_id=company_id,
            preferred_language=language))
        if clock is not None:
            user.created_at = clock()
        for question, answer in (ANSWERS if answers is None else answers).items():
            session.add(SecurityAnswer(user_id=user.id, question=question,
                                       answer_hash=hash_secret(normalize_answer(answer))))
        return user.id


def user_row(app, user_id: str) -> User:
    with app.extensions["portico"].db.read() as session:
        user = session.get(User, user_id)
        session.expunge(user)
        return user


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


def login(client, username: str = "ana.garcia", password: str = PASSWORD, **query: str):
    page = client.get("/login", query_string=query)
    return client.post("/login", query_string=query, data={
        "username": username, "password": password, "csrf_token": csrf_of(page.text),
        "next": "/account"})


def audit_rows(app, action: str | None = None) -> list[dict[str, Any]]:
    with app.extensions["portico"].db.read() as session:
        rows = session.scalars(select(AuditEvent).order_by(AuditEvent.id)).all()
        found = [{"action": r.action, "actor_type": r.actor_type, "actor_id": r.actor_id,
                  "subject_id": r.subject_id, "tracking_number": r.tracking_number,
                  "occurred_at": r.occurred_at, "detail": json.loads(r.detail)}
                 for r in rows]
    return [r for r in found if action is None or r["action"] == action]


def assert_helpdesk_action(app, user_id: str, action: str, why: str,
                           tracking: str | None = None) -> None:
    """One ``helpdesk.<action>`` audit row by agent-7 with ``why``, and one
    ``identity.helpdesk.action`` event of it."""
    [row] = audit_rows(app, f"helpdesk.{action}")
    assert row["actor_type"] == "helpdesk" and row["actor_id"] == "agent-7"
    assert row["subject_id"] == user_id and row["detail"]["why"] == why
    assert row["occurred_at"] is not None
    published = [e for e in events(app, "identity.helpdesk.action") if e.data["action"] == action]
    assert len(published) == 1
    assert published[0].data["actor_id"] == "agent-7" and published[0].data["why"] == why
    assert published[0].subject == user_id
    if tracking:
        assert row["tracking_number"] == tracking
