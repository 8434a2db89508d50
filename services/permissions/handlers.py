"""Identity's events this service consumes (group ``permissions``), see docs/events.md.

Each handler runs inside the consumer's transaction and is idempotent by itself, not
only through the processed-events table.
"""

from __future__ import annotations

from functools import cache

from sqlalchemy.orm import Session

from services.common.config import load
from services.common.events import Envelope, HandlerRegistry, utcnow

from . import readmodel
from .settings import PermissionsSettings

registry = HandlerRegistry()


@cache
def _request_ttl_days() -> int:
    """A membership request waits as long as an access request (REQUEST_TTL_DAYS)."""
    return load(PermissionsSettings).request_ttl_days


@registry.on("identity.user.activated")
def on_user_activated(session: Session, envelope: Envelope) -> None:
    readmodel.user_activated(session, envelope.data, utcnow(), ttl_days=_request_ttl_days())


@registry.on("identity.user.deactivated")
@registry.on("identity.user.reactivated")
@registry.on("identity.user.disabled")
def on_user_status(session: Session, envelope: Envelope) -> None:
    readmodel.status_changed(session, envelope.type, envelope.data, utcnow())


@registry.on("identity.contact.changed")
def on_contact_changed(session: Session, envelope: Envelope) -> None:
    readmodel.contact_changed(session, envelope.data, utcnow())
