"""Domain vocabulary shared by the use cases: the access-request state machine and the
helpers that record an event and an audit entry. The use cases' refusals are the
kernel's (:mod:`services.common.domain_errors`), answered as problem+json by the app
factory."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy.orm import Session

from services.common.domain_errors import IllegalTransition
from services.common.events import Envelope, record_event

from .models import AuditEntry, OutboxEvent

SOURCE = "permissions"


class RequestState(enum.StrEnum):
    PENDING = "pending"
    COSIGNED = "cosigned"  # a self-request the help desk co-signed; still undecided
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


OPEN_STATES = (RequestState.PENDING, RequestState.COSIGNED)

TRANSITIONS: dict[RequestState, frozenset[RequestState]] = {
    RequestState.PENDING: frozenset({RequestState.COSIGNED, RequestState.APPROVED,
                                     RequestState.REJECTED, RequestState.EXPIRED,
                                     RequestState.CANCELLED}),
    RequestState.COSIGNED: frozenset({RequestState.APPROVED, RequestState.REJECTED,
                                      RequestState.EXPIRED, RequestState.CANCELLED}),
    RequestState.APPROVED: frozenset(),
    RequestState.REJECTED: frozenset(),
    RequestState.EXPIRED: frozenset(),
    RequestState.CANCELLED: frozenset(),
}


class MembershipState(enum.StrEnum):
    """A membership request (memberships.py): a newcomer waiting to join a company."""

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


MEMBERSHIP_TRANSITIONS: dict[MembershipState, frozenset[MembershipState]] = {
    MembershipState.PENDING: frozenset({MembershipState.APPROVED, MembershipState.REJECTED,
                                        MembershipState.EXPIRED, MembershipState.CANCELLED}),
    MembershipState.APPROVED: frozenset(),
    MembershipState.REJECTED: frozenset(),
    MembershipState.EXPIRED: frozenset(),
    MembershipState.CANCELLED: frozenset(),
}


def transition(current: str, target: RequestState) -> RequestState:
    """Check ``current → target`` against :data:`TRANSITIONS`; the new state."""
    state = RequestState(current)
    if target not in TRANSITIONS[state]:
        raise IllegalTransition(f"The request is {state.value}; it cannot become {target.value}.")
    return target


def publish(session: Session, event_type: str, data: dict[str, Any], *,
            subject: str | None = None, company_id: str | None = None,
            tracking_number: str | None = None) -> Envelope:
    """Record ``event_type`` in the outbox, in ``session``'s transaction."""
    envelope = Envelope.new(event_type, SOURCE, data, subject=subject, company_id=company_id,
                            tracking_number=tracking_number)
    return record_event(session, OutboxEvent, envelope)


def audit(session: Session, *, actor_id: str, action: str, target_type: str, target_id: str,
          company_id: str | None = None, why: str | None = None,
          details: dict[str, Any] | None = None, now: Any = None) -> None:
    """Append who did what, to what, when and why."""
    entry = AuditEntry(actor_id=actor_id, action=action, target_type=target_type,
                       target_id=target_id, company_id=company_id, why=why, details=details)
    if now is not None:
        entry.occurred_at = now
    session.add(entry)
