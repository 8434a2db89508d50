"""The audit log: an append-only record of security-relevant events, for the help desk.

``record(session, action, ...)`` adds a row in the caller's transaction (so it commits
with the change it describes). Rows are never updated or deleted (the ORM refuses).
``detail`` must carry nothing secret: it is shown to the help desk as is.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import AuditEvent


@dataclass(frozen=True)
class Actor:
    """Who did it: ``anonymous`` (with ip), ``user``, ``helpdesk`` or ``system``."""

    type: str = "anonymous"
    id: str | None = None
    ip: str | None = None
    request_id: str | None = None


SYSTEM = Actor("system")


def record(session: Session, action: str, actor: Actor, *, subject_type: str,
           subject_id: str | None, tracking_number: str | None = None,
           detail: dict[str, Any] | None = None) -> AuditEvent:
    row = AuditEvent(action=action, actor_type=actor.type, actor_id=actor.id,
                     subject_type=subject_type, subject_id=subject_id,
                     tracking_number=tracking_number, ip=actor.ip,
                     request_id=actor.request_id,
                     detail=json.dumps(detail or {}, sort_keys=True, default=str))
    session.add(row)
    return row


@dataclass(frozen=True)
class AuditQuery:
    subject_id: str | None = None
    tracking_number: str | None = None
    action: str | None = None
    actor_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    before_id: int | None = None
    limit: int = 50


def query(session: Session, q: AuditQuery) -> list[AuditEvent]:
    """Newest first; page on with ``before_id`` = the last row's id."""
    stmt = select(AuditEvent).order_by(AuditEvent.id.desc()).limit(max(1, min(q.limit, 200)))
    if q.subject_id:
        stmt = stmt.where(AuditEvent.subject_id == q.subject_id)
    if q.tracking_number:
        stmt = stmt.where(AuditEvent.tracking_number == q.tracking_number)
    if q.action:
        stmt = stmt.where(AuditEvent.action == q.action)
    if q.actor_id:
        stmt = stmt.where(AuditEvent.actor_id == q.actor_id)
    if q.since:
        stmt = stmt.where(AuditEvent.occurred_at >= q.since)
    if q.until:
        stmt = stmt.where(AuditEvent.occurred_at < q.until)
    if q.before_id:
        stmt = stmt.where(AuditEvent.id < q.before_id)
    return list(session.scalars(stmt))


def as_dict(row: AuditEvent) -> dict[str, Any]:
    return {"id": row.id, "occurred_at": row.occurred_at.isoformat(), "action": row.action,
            "actor": {"type": row.actor_type, "id": row.actor_id, "ip": row.ip},
            "subject": {"type": row.subject_type, "id": row.subject_id},
            "tracking_number": row.tracking_number, "request_id": row.request_id,
            "detail": json.loads(row.detail or "{}")}
