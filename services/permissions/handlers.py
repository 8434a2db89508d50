"""Identity's events this service consumes (group ``permissions``), see docs/events.md.

Each handler runs inside the consumer's transaction and is idempotent by itself, not
only through the processed-events table.
"""

from __future__ import annotations

from typing import Any

from redis import Redis
from sqlalchemy.orm import Session

from services.common.db import settings_of
from services.common.events import Envelope, HandlerRegistry, utcnow

from . import readmodel
from .cache import INVALIDATOR, Invalidator
from .settings import PermissionsSettings

registry = HandlerRegistry()


def session_info(settings: PermissionsSettings, redis_client: Redis) -> dict[str, Any]:
    """What the worker's sessions carry for these handlers: the permission cache's
    invalidator, so that a read-model change reaches every replica's cache."""
    return {INVALIDATOR: Invalidator(redis_client, settings.redis_namespace)}


@registry.on("identity.user.activated")
def on_user_activated(session: Session, envelope: Envelope) -> None:
    # A membership request waits as long as an access request (REQUEST_TTL_DAYS).
    ttl_days = settings_of(session).request_ttl_days
    readmodel.user_activated(session, envelope.data, utcnow(), ttl_days=ttl_days)


@registry.on("identity.user.deactivated")
@registry.on("identity.user.reactivated")
@registry.on("identity.user.disabled")
def on_user_status(session: Session, envelope: Envelope) -> None:
    readmodel.status_changed(session, envelope.type, envelope.data, utcnow())


@registry.on("identity.contact.changed")
def on_contact_changed(session: Session, envelope: Envelope) -> None:
    readmodel.contact_changed(session, envelope.data, utcnow())
