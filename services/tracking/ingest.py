"""Building transactions from other services' events (docs/events.md, last table).

Rules (also in docs/tracking.md):

* The first event seen for a tracking number creates the transaction with that
  event's status, whatever its place in the real sequence (events may arrive out
  of order).
* A later event is always kept in the history. It moves the status only when its
  ``occurred_at`` is not older than the event that set the current status
  (``last_event_at``) **and** the state machine allows the move; otherwise it is
  recorded with ``applied = false``.
* An event whose id is already in the history changes nothing (duplicates).
* Owner, company and title are filled in by whichever event carries them, so the
  end state does not depend on arrival order. ``created_at`` is the earliest
  ``occurred_at`` seen.
* Each applied status records ``tracking.status.changed``. Tracking never consumes
  its own ``tracking.*`` events, so it cannot loop.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.common.events import Envelope, utcnow

from .domain import Status, can_move
from .history import add_history, as_utc, move, publish_change
from .models import StatusChange, Transaction

log = logging.getLogger("portico.tracking.ingest")


@dataclass(frozen=True)
class Rule:
    type: str
    status: Status
    when: Callable[[dict[str, Any]], bool] | None = None


RULES: dict[str, Rule] = {
    "identity.enrollment.submitted": Rule("enrollment", Status.SUBMITTED),
    "identity.enrollment.verified": Rule("enrollment", Status.IN_REVIEW),
    "identity.access_code.issued": Rule("enrollment", Status.APPROVED),
    "identity.user.activated": Rule("enrollment", Status.COMPLETED),
    "identity.enrollment.locked": Rule("enrollment", Status.FAILED),
    "identity.password_reset.requested": Rule("password_reset", Status.SUBMITTED),
    "identity.password.changed": Rule("password_reset", Status.COMPLETED,
                                      when=lambda data: data.get("via") == "reset"),
    "identity.contact.change_requested": Rule("contact_change", Status.SUBMITTED),
    "identity.contact.changed": Rule("contact_change", Status.COMPLETED),
    "identity.user.reactivated": Rule("reactivation", Status.COMPLETED),
    "permissions.request.created": Rule("entitlement_request", Status.SUBMITTED),
    "permissions.request.cosigned": Rule("entitlement_request", Status.IN_REVIEW),
    "permissions.request.approved": Rule("entitlement_request", Status.APPROVED),
    "permissions.request.rejected": Rule("entitlement_request", Status.REJECTED),
    "permissions.request.expired": Rule("entitlement_request", Status.EXPIRED),
    "permissions.request.cancelled": Rule("entitlement_request", Status.CANCELLED),
}

TITLES: dict[str, tuple[str, str]] = {
    "enrollment": ("Enrollment", "Inscripción"),
    "password_reset": ("Password reset", "Restablecimiento de contraseña"),
    "contact_change": ("Contact details change", "Cambio de datos de contacto"),
    "reactivation": ("User ID reactivation", "Reactivación del ID de usuario"),
    "entitlement_request": ("Entitlement request", "Solicitud de permisos"),
}


def titles(type_: str, data: dict[str, Any]) -> tuple[str, str]:
    en, es = TITLES[type_]
    keys = data.get("entitlements")
    if type_ == "entitlement_request" and isinstance(keys, list) and keys:
        listed = ", ".join(sorted(str(k) for k in keys))
        en, es = f"{en}: {listed}"[:200], f"{es}: {listed}"[:200]
    return en, es


def _owner(rule: Rule, envelope: Envelope) -> str | None:
    data = envelope.data
    if rule.type == "entitlement_request":
        # The person who asked follows the request; the target is its subject.
        return data.get("requester_id") or envelope.subject
    return envelope.subject or data.get("user_id")


def _actor(envelope: Envelope) -> str:
    data = envelope.data
    person = data.get("decided_by") or data.get("cosigned_by") or data.get("actor_id")
    return f"user:{person}" if person else f"service:{envelope.source}"


def _comment(envelope: Envelope) -> str | None:
    comment = envelope.data.get("comment")
    return str(comment)[:1000] if comment else None


def ingest_event(session: Session, envelope: Envelope) -> None:
    """Apply one event of docs/events.md's mapping table (idempotent, order-independent)."""
    rule = RULES.get(envelope.type)
    if rule is None or (rule.when is not None and not rule.when(envelope.data)):
        return
    raw_number = envelope.tracking_number or ""
    if not tracking_numbers.is_valid(raw_number):
        log.warning("event without a valid tracking number ignored",
                    extra={"event_id": envelope.id, "event_type": envelope.type})
        return
    number = tracking_numbers.normalize(raw_number)
    seen = session.scalar(select(StatusChange.id).where(StatusChange.event_id == envelope.id))
    if seen is not None:
        return
    at = as_utc(envelope.occurred)
    tx = session.scalar(select(Transaction).where(Transaction.tracking_number == number)
                        .with_for_update())
    if tx is None:
        _create(session, rule, envelope, number, at)
        return
    _fill_in(tx, rule, envelope, at)
    applied = (tx.type == rule.type and at >= as_utc(tx.last_event_at)
               and can_move(tx.status, rule.status))
    if applied:
        move(session, tx, rule.status, at, actor=_actor(envelope), comment=_comment(envelope),
             correlation_id=envelope.correlation_id or tx.correlation_id,
             event_id=envelope.id, event_type=envelope.type)
    else:
        add_history(session, tx, rule.status, at, applied=False, actor=_actor(envelope),
                    comment=_comment(envelope), event_id=envelope.id, event_type=envelope.type)


def _create(session: Session, rule: Rule, envelope: Envelope, number: str, at: Any) -> None:
    title_en, title_es = titles(rule.type, envelope.data)
    tx = Transaction(
        tracking_number=number, type=rule.type, owner_user_id=_owner(rule, envelope),
        company_id=envelope.company_id or envelope.data.get("company_id"),
        title_en=title_en, title_es=title_es, status=str(rule.status), created_at=at,
        updated_at=utcnow(), correlation_id=envelope.correlation_id or None,
        last_event_at=at, source=envelope.source,
    )
    session.add(tx)
    add_history(session, tx, tx.status, at, applied=True, actor=_actor(envelope),
                comment=_comment(envelope), event_id=envelope.id, event_type=envelope.type)
    publish_change(session, tx, None, _comment(envelope), tx.correlation_id)
    session.flush()


def _fill_in(tx: Transaction, rule: Rule, envelope: Envelope, at: Any) -> None:
    if tx.type != rule.type:
        return
    tx.owner_user_id = tx.owner_user_id or _owner(rule, envelope)
    tx.company_id = tx.company_id or envelope.company_id or envelope.data.get("company_id")
    generic_en, _ = TITLES[rule.type]
    if tx.title_en == generic_en:
        tx.title_en, tx.title_es = titles(rule.type, envelope.data)
    if at < as_utc(tx.created_at):
        tx.created_at = at
