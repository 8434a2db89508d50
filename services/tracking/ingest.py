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
  end state does not depend on arrival order. Enrollment and membership transactions
  are never filed under a company (``PRIVATE_TYPES``). ``created_at`` is the earliest
  ``occurred_at`` seen.
* Each applied status records ``tracking.status.changed``. Tracking never consumes
  its own ``tracking.*`` events, so it cannot loop.
* Two consumers may race to create one transaction: the creation is an
  ``INSERT ... ON CONFLICT DO NOTHING``; on PostgreSQL the loser waits for the winner's
  commit, inserts nothing, then loads the winner's row ``FOR UPDATE`` and carries on.

The consumer hands over a whole batch (``ingest_events``): about six statements per
batch instead of several per event.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.common.events import Envelope, insert_ignoring_conflicts, utcnow

from .domain import Status, can_move
from .history import as_utc, history_row, publish_change
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
    "permissions.membership.requested": Rule("membership", Status.SUBMITTED),
    "permissions.membership.approved": Rule("membership", Status.APPROVED),
    "permissions.membership.rejected": Rule("membership", Status.REJECTED),
    "permissions.membership.expired": Rule("membership", Status.EXPIRED),
}

# Never filed under a company, whatever company id their events carry: an unverified
# enrollment or a newcomer's request naming a company's tax id is not yet (and may
# never be) that company's business. Their owner and the help desk see them.
PRIVATE_TYPES = frozenset({"enrollment", "membership"})

TITLES: dict[str, tuple[str, str]] = {
    "enrollment": ("Enrollment", "Inscripción"),
    "password_reset": ("Password reset", "Restablecimiento de contraseña"),
    "contact_change": ("Contact details change", "Cambio de datos de contacto"),
    "reactivation": ("User ID reactivation", "Reactivación del ID de usuario"),
    "entitlement_request": ("Entitlement request", "Solicitud de permisos"),
    "membership": ("Company membership request", "Solicitud de membresía en la empresa"),
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


def _company(rule: Rule, envelope: Envelope) -> str | None:
    if rule.type in PRIVATE_TYPES:
        return None
    return envelope.company_id or envelope.data.get("company_id")


def _actor(envelope: Envelope) -> str:
    data = envelope.data
    person = data.get("decided_by") or data.get("cosigned_by") or data.get("actor_id")
    return f"user:{person}" if person else f"service:{envelope.source}"


def _comment(envelope: Envelope) -> str | None:
    comment = envelope.data.get("comment")
    return str(comment)[:1000] if comment else None


@dataclass
class _Arrival:
    envelope: Envelope
    rule: Rule
    number: str
    at: datetime


def ingest_events(session: Session, envelopes: list[Envelope]) -> None:
    """Apply events in arrival order, with a handful of statements for the whole list:
    the duplicate check, the transactions loaded ``FOR UPDATE`` (in tracking-number
    order, so two consumers lock in the same order), the new transactions inserted with
    ``RETURNING``, the history in one insert; updates and outbox rows are flushed with
    the consumer's commit. The result is that of applying them one by one."""
    arrivals = _arrivals(envelopes)
    if not arrivals:
        return
    seen = set(session.scalars(select(StatusChange.event_id).where(
        StatusChange.event_id.in_([a.envelope.id for a in arrivals]))))
    fresh: list[_Arrival] = []
    for arrival in arrivals:
        if arrival.envelope.id not in seen:  # duplicates change nothing
            seen.add(arrival.envelope.id)
            fresh.append(arrival)
    if not fresh:
        return
    numbers = sorted({a.number for a in fresh})
    txs = _locked(session, numbers)
    creators = _create_missing(session, [a for a in fresh if a.number not in txs], txs)
    history: list[dict[str, Any]] = []
    for arrival in fresh:
        tx, envelope, rule, at = txs[arrival.number], arrival.envelope, arrival.rule, arrival.at
        comment = _comment(envelope)
        if arrival.envelope.id in creators:
            applied = True
            publish_change(session, tx, None, comment, tx.correlation_id)
        else:
            applied = (tx.type == rule.type and at >= tx.last_event_at
                       and can_move(tx.status, rule.status))
            _fill_in(tx, rule, envelope, at)
            if applied:
                old = tx.status
                tx.status, tx.last_event_at, tx.updated_at = str(rule.status), at, utcnow()
                publish_change(session, tx, old, comment,
                               envelope.correlation_id or tx.correlation_id)
        history.append(history_row(tx.id, str(rule.status), at, applied=applied,
                                   actor=_actor(envelope), comment=comment,
                                   event_id=envelope.id, event_type=envelope.type))
    session.execute(insert(StatusChange), history)


def _arrivals(envelopes: list[Envelope]) -> list[_Arrival]:
    found = []
    for envelope in envelopes:
        rule = RULES.get(envelope.type)
        if rule is None or (rule.when is not None and not rule.when(envelope.data)):
            continue
        raw_number = envelope.tracking_number or ""
        if not tracking_numbers.is_valid(raw_number):
            log.warning("event without a valid tracking number ignored",
                        extra={"event_id": envelope.id, "event_type": envelope.type})
            continue
        found.append(_Arrival(envelope, rule, tracking_numbers.normalize(raw_number),
                              as_utc(envelope.occurred)))
    return found


def _locked(session: Session, numbers: list[str]) -> dict[str, Transaction]:
    if not numbers:
        return {}
    return {tx.tracking_number: tx for tx in session.scalars(
        select(Transaction).where(Transaction.tracking_number.in_(numbers))
        .order_by(Transaction.tracking_number).with_for_update())}


def _create_missing(session: Session, arrivals: list[_Arrival],
                    txs: dict[str, Transaction]) -> set[str]:
    """Insert the transaction of each number not found, from its first event; add them to
    ``txs``; the ids of the events that created one.

    ``ON CONFLICT DO NOTHING``: a number another consumer created meanwhile is loaded
    (``FOR UPDATE``) instead, and its events apply to it as later events.
    """
    firsts: dict[str, _Arrival] = {}
    for arrival in arrivals:
        firsts.setdefault(arrival.number, arrival)
    if not firsts:
        return set()
    rows = [_new_transaction(a) for _, a in sorted(firsts.items())]
    created = session.scalars(insert_ignoring_conflicts(session, Transaction)
                              .returning(Transaction), rows).all()
    txs.update((tx.tracking_number, tx) for tx in created)
    txs.update(_locked(session, [n for n in firsts if n not in txs]))
    return {firsts[tx.tracking_number].envelope.id for tx in created}


def _new_transaction(arrival: _Arrival) -> dict[str, Any]:
    rule, envelope, at = arrival.rule, arrival.envelope, arrival.at
    title_en, title_es = titles(rule.type, envelope.data)
    return dict(
        tracking_number=arrival.number, type=rule.type, owner_user_id=_owner(rule, envelope),
        company_id=_company(rule, envelope),
        title_en=title_en, title_es=title_es, status=str(rule.status), created_at=at,
        updated_at=utcnow(), correlation_id=envelope.correlation_id or None,
        last_event_at=at, source=envelope.source,
    )


def _fill_in(tx: Transaction, rule: Rule, envelope: Envelope, at: Any) -> None:
    if tx.type != rule.type:
        return
    tx.owner_user_id = tx.owner_user_id or _owner(rule, envelope)
    tx.company_id = tx.company_id or _company(rule, envelope)
    generic_en, _ = TITLES[rule.type]
    if tx.title_en == generic_en:
        tx.title_en, tx.title_es = titles(rule.type, envelope.data)
    if at < tx.created_at:
        tx.created_at = at
