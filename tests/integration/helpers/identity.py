"""Helpers shared by the enrollment and lifecycle tests: a controllable clock, the events
identity put in its outbox (and their sealed secrets), and problem bodies."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select

from services.common.events import Envelope, Sealer
from services.identity.models import OutboxEvent


class Clock:
    def __init__(self) -> None:
        self.now = datetime.now(UTC)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def events(app, type_: str | None = None) -> list[Envelope]:
    with app.extensions["portico"].db.read() as session:
        rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        found = [Envelope.from_json(r.payload) for r in rows]
    return [e for e in found if type_ is None or e.type == type_]


def unseal(app, envelope: Envelope) -> dict[str, Any]:
    return Sealer(app.extensions["portico"].settings.event_sealing_key).unseal(envelope.sealed)


def problem(response) -> dict[str, Any]:
    assert response.mimetype == "application/problem+json", response.data
    return json.loads(response.data)
