"""Queueing an outgoing message: render it, store it, and later hand its bodies to the sender.

A message is identified by (event id, template, recipient): the unique constraint and the
``Message-ID`` both derive from it, so a redelivered event can never queue a second copy
and a retried send always carries the same ``Message-ID``.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.events import Envelope, utcnow

from .models import MessageStatus, OutgoingMessage
from .templating import render

log = logging.getLogger("portico.notifier")


@dataclass(frozen=True)
class Addressee:
    email: str
    language: str
    given_name: str = ""
    user_id: str | None = None
    wants_status_changes: bool = True


class BodyVault:
    """Encrypts the bodies of a message carrying a secret while it waits to be sent."""

    def __init__(self, key: str | bytes) -> None:
        self._fernet = Fernet(key)

    def lock(self, body: str) -> str:
        return self._fernet.encrypt(body.encode()).decode()

    def open(self, token: str) -> str:
        return self._fernet.decrypt(token.encode()).decode()


def message_id_for(event_id: str, template: str, recipient: str) -> str:
    """``<event-id.template.recipient-hash@portico>``: the same for every try of one message."""
    digest = hashlib.sha256(recipient.strip().lower().encode()).hexdigest()[:16]
    return f"<{event_id}.{template}.{digest}@portico>"


def queue_message(session: Session, envelope: Envelope, *, template: str, to: Addressee,
                  context: dict[str, Any], vault: BodyVault, carries_secret: bool = False,
                  informational: bool = False) -> OutgoingMessage | None:
    """Render ``template`` for ``to`` and add it to the queue in ``session``'s transaction.

    Returns None when nothing is queued: an informational email the recipient opted
    out of, or a message this event already queued.
    """
    if informational and not to.wants_status_changes:
        log.info("informational email skipped by preference",
                 extra={"event_id": envelope.id, "template": template})
        return None
    existing = session.scalar(select(OutgoingMessage.id).where(
        OutgoingMessage.event_id == envelope.id, OutgoingMessage.template == template,
        OutgoingMessage.recipient == to.email))
    if existing is not None:
        return None
    rendered = render(template, to.language, {
        **context, "given_name": to.given_name, "tracking_number": envelope.tracking_number})
    text, html = rendered.text, rendered.html
    if carries_secret:
        text, html = vault.lock(text), vault.lock(html)
    message = OutgoingMessage(
        event_id=envelope.id, event_type=envelope.type,
        message_id=message_id_for(envelope.id, template, to.email),
        template=template, recipient=to.email, recipient_user_id=to.user_id,
        language=to.language, status=MessageStatus.QUEUED, attempts=0,
        next_attempt_at=utcnow(), tracking_number=envelope.tracking_number,
        subject=rendered.subject, carries_secret=carries_secret,
        body_text=text, body_html=html,
    )
    session.add(message)
    return message


def bodies(message: OutgoingMessage, vault: BodyVault) -> tuple[str, str]:
    """The plain and HTML bodies to send, decrypted in memory if they carry a secret."""
    if message.body_text is None or message.body_html is None:
        raise ValueError("the message's bodies were purged")
    if message.carries_secret:
        return vault.open(message.body_text), vault.open(message.body_html)
    return message.body_text, message.body_html


def purge_secret_bodies(message: OutgoingMessage) -> None:
    """Drop the stored bodies of a delivered message that carried a secret (retention)."""
    if message.carries_secret:
        message.body_text = None
        message.body_html = None
        message.body_purged_at = utcnow()
