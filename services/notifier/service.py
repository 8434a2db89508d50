"""Use cases of the notifier's admin API (no Flask here: a CLI could call the same code)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common import domain_errors

from .models import AuditEntry, DeliveryAttempt, IllegalTransition, MessageStatus, OutgoingMessage

# Ids are SQL INTEGER: a larger number names no row, and PostgreSQL refuses to bind it.
MAX_PK = 2**31 - 1


class MessageNotFound(domain_errors.NotFound):
    def __init__(self, pk: int) -> None:
        super().__init__("No message with this id.")
        self.pk = pk


class BodiesGone(domain_errors.Conflict):
    """A message whose bodies were purged cannot be sent again."""

    def __init__(self, pk: int) -> None:
        super().__init__("The message's bodies were purged; it cannot be resent.",
                         kind="bodies-purged")
        self.pk = pk


@dataclass(frozen=True)
class MessageFilter:
    status: MessageStatus | None = None
    template: str | None = None
    recipient: str | None = None
    tracking_number: str | None = None
    event_id: str | None = None


def list_messages(session: Session, filters: MessageFilter, *, before: int | None = None,
                  limit: int = 50) -> tuple[list[OutgoingMessage], int | None]:
    """Newest first; ``before`` is the cursor (the last id of the previous page).

    Returns the page and the cursor of the next one (None on the last page).
    """
    query = select(OutgoingMessage).order_by(OutgoingMessage.id.desc()).limit(limit + 1)
    if filters.status is not None:
        query = query.where(OutgoingMessage.status == filters.status)
    if filters.template:
        query = query.where(OutgoingMessage.template == filters.template)
    if filters.recipient:
        query = query.where(func.lower(OutgoingMessage.recipient) == filters.recipient.lower())
    if filters.tracking_number:
        query = query.where(OutgoingMessage.tracking_number == filters.tracking_number)
    if filters.event_id:
        query = query.where(OutgoingMessage.event_id == filters.event_id)
    if before is not None:
        query = query.where(OutgoingMessage.id < before)
    rows = list(session.scalars(query))
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].id
    return rows, None


def get_message(session: Session, pk: int) -> OutgoingMessage:
    message = session.get(OutgoingMessage, pk) if pk <= MAX_PK else None
    if message is None:
        raise MessageNotFound(pk)
    return message


def attempts_of(session: Session, pk: int) -> list[DeliveryAttempt]:
    return list(session.scalars(select(DeliveryAttempt).where(DeliveryAttempt.message_pk == pk)
                                .order_by(DeliveryAttempt.id)))


def resend_message(session: Session, pk: int, *, actor: str, reason: str = "",
                   now: datetime) -> OutgoingMessage:
    """Put a dead-lettered message back in the queue with a fresh attempt budget (audited).

    It keeps its Message-ID: a recipient's mailbox that de-duplicates will not show a
    second copy if the first one did arrive after all.
    """
    message = session.get(OutgoingMessage, pk, with_for_update=True) if pk <= MAX_PK else None
    if message is None:
        raise MessageNotFound(pk)
    if message.body_text is None:
        raise BodiesGone(pk)
    previous_error = message.last_error
    try:
        message.move_to(MessageStatus.QUEUED)
    except IllegalTransition as exc:
        raise domain_errors.IllegalTransition(
            f"Only a dead message can be resent; this one is {exc.current.value}.") from None
    message.attempts = 0
    message.next_attempt_at = now
    message.last_error = None
    session.add(AuditEntry(actor=actor, action="message.resend", message_pk=pk,
                           detail=json.dumps({"reason": reason, "previous_error": previous_error})))
    return message


def delivery_stats(session: Session) -> dict[str, Any]:
    """Counts of messages by status and, per template, by status."""
    by_status = {s.value: 0 for s in MessageStatus}
    by_template: dict[str, dict[str, int]] = {}
    rows = session.execute(select(OutgoingMessage.template, OutgoingMessage.status, func.count())
                           .group_by(OutgoingMessage.template, OutgoingMessage.status))
    for template, status, count in rows:
        value = MessageStatus(status).value
        by_status[value] += count
        by_template.setdefault(template, {})[value] = count
    return {"total": sum(by_status.values()), "by_status": by_status, "by_template": by_template}
