"""The read model of recipients: contact details and preferences from identity events."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy.orm import Session

from .models import Recipient
from .templating import language_of


class RecipientUnknown(LookupError):
    """The user an email is for is not in the read model yet.

    Streams of different services are not ordered among themselves (a request created
    in permissions may overtake the user's activation in identity), so the handler
    raises and the consumer redelivers the event later.
    """


def _aware(moment: datetime) -> datetime:
    """An event's ``occurred_at`` written without an offset is UTC, as producers' clocks are."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def upsert_recipient(session: Session, user_id: str, occurred: datetime, data: dict[str, Any]) -> None:
    """Apply the contact details in ``data`` unless a newer event already did."""
    found = session.get(Recipient, user_id)
    occurred = _aware(occurred)
    if found is not None and found.as_of > occurred:
        return
    if found is None:
        found = Recipient(user_id=user_id, email=data.get("email") or "", as_of=occurred)
        session.add(found)
    if data.get("email"):
        found.email = str(data["email"])
    if data.get("given_name") is not None:
        found.given_name = str(data["given_name"])
    if data.get("preferred_language"):
        found.preferred_language = language_of(data["preferred_language"])
    notifications = data.get("notifications")
    if isinstance(notifications, dict) and "status_changes" in notifications:
        found.status_changes = bool(notifications["status_changes"])
    found.as_of = occurred


def recipient(session: Session, user_id: str | None) -> Recipient:
    """The read-model row of ``user_id``, or :class:`RecipientUnknown`."""
    found = session.get(Recipient, user_id) if user_id else None
    if found is None or not found.email:
        raise RecipientUnknown(f"user {user_id} is not known to the notifier yet")
    return found
