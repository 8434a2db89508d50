"""Use cases of the tracking service's API (no Flask here).

Who may see a transaction (:func:`may_see`): its owner, an administrator of its
company holding ``transactions.track``, and the help desk (``helpdesk.act``).
Anyone else is told it does not exist.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from services.common import tracking_numbers
from services.common.events import utcnow

from .domain import Status, TransactionExists, TransactionNotFound, check_move
from .history import add_history, move, publish_change
from .models import Transaction

TRACK_ENTITLEMENT = "transactions.track"
HELPDESK_ENTITLEMENT = "helpdesk.act"


@dataclass(frozen=True)
class Viewer:
    """The caller as the access rules see it (from the access token's claims)."""

    user_id: str | None
    company_id: str | None = None
    entitlements: frozenset[str] = field(default_factory=frozenset)

    @property
    def is_helpdesk(self) -> bool:
        return HELPDESK_ENTITLEMENT in self.entitlements

    @property
    def is_company_admin(self) -> bool:
        return bool(self.company_id) and TRACK_ENTITLEMENT in self.entitlements


def may_see(viewer: Viewer, tx: Transaction) -> bool:
    if viewer.is_helpdesk:
        return True
    if viewer.user_id and tx.owner_user_id == viewer.user_id:
        return True
    return viewer.is_company_admin and tx.company_id == viewer.company_id


def find_transaction(session: Session, tracking_number: str, viewer: Viewer) -> Transaction:
    """The transaction ``viewer`` may see, or :class:`TransactionNotFound` (no existence leak).

    ``tracking_number`` must already be valid (normalised by the caller).
    """
    tx = session.scalar(select(Transaction).where(Transaction.tracking_number == tracking_number)
                        .options(selectinload(Transaction.history)))
    if tx is None or not may_see(viewer, tx):
        raise TransactionNotFound(tracking_number)
    return tx


def register_transaction(session: Session, *, client_id: str, type: str, owner_user_id: str,
                         company_id: str | None, title_en: str, title_es: str,
                         status: str = Status.SUBMITTED, tracking_number: str | None = None,
                         comment: str | None = None,
                         correlation_id: str | None = None) -> Transaction:
    """An internal app registers one of its own transactions (``source = "app"``)."""
    number = tracking_number or tracking_numbers.generate()
    exists = session.scalar(select(Transaction.id).where(Transaction.tracking_number == number))
    if exists is not None:
        raise TransactionExists(number)
    now = utcnow()
    tx = Transaction(tracking_number=number, type=type, owner_user_id=owner_user_id,
                     company_id=company_id, title_en=title_en, title_es=title_es,
                     status=str(Status(status)), created_at=now, updated_at=now,
                     correlation_id=correlation_id, last_event_at=now, source="app",
                     client_id=client_id)
    session.add(tx)
    add_history(session, tx, tx.status, now, applied=True, actor=f"client:{client_id}",
                comment=comment)
    publish_change(session, tx, None, comment, correlation_id)
    session.flush()
    return tx


def change_status(session: Session, *, client_id: str, tracking_number: str, status: str,
                  comment: str | None = None, correlation_id: str | None = None) -> Transaction:
    """An internal app moves one of the transactions it registered.

    Raises :class:`TransactionNotFound` for another app's (or an event-built)
    transaction and :class:`~.domain.IllegalTransition` for a forbidden move.
    """
    tx = session.scalar(select(Transaction).where(Transaction.tracking_number == tracking_number)
                        .with_for_update())
    if tx is None or tx.source != "app" or tx.client_id != client_id:
        raise TransactionNotFound(tracking_number)
    check_move(tx.status, status)
    move(session, tx, status, utcnow(), actor=f"client:{client_id}", comment=comment,
         correlation_id=correlation_id or tx.correlation_id)
    session.flush()
    return tx
