"""Use cases of the tracking service's API (no Flask here).

Who may see a transaction (:func:`may_see`): its owner; an administrator of its company
(the company entitlement ``transactions.track_company``, held only by administrator
roles); and the help desk (the platform power ``platform.helpdesk``). Both powers are
asked of permissions (:class:`Powers`) from its current data, never read from the
token's claims, and only when the viewer is not the owner. Anyone else is told the
transaction does not exist.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import bindparam, select
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.common.db import Database, DriverStatement

from .domain import Status, TransactionExists, TransactionNotFound, check_move
from .history import add_history, move, publish_change
from .models import StatusChange, Transaction


class Powers(Protocol):
    """What permissions says of the viewer (asked per request, never cached here)."""

    def sees_company_or_all(self, company_id: str | None) -> bool:
        """Help desk, or an administrator of ``company_id`` with company-wide tracking."""

    def sees_company(self, company_id: str) -> bool:
        """An administrator of ``company_id`` with company-wide tracking."""


@dataclass(frozen=True)
class Viewer:
    """The caller: the token's ``sub``, the company the token names (only a hint of what
    to ask; permissions decides) and how to ask permissions about them."""

    user_id: str | None
    company_id: str | None = None
    powers: Powers | None = None


def may_see(viewer: Viewer, tx: Any) -> bool:
    """``tx``: anything with ``owner_user_id`` and ``company_id`` (a model or a row)."""
    if viewer.user_id and tx.owner_user_id == viewer.user_id:
        return True
    return viewer.powers is not None and viewer.powers.sees_company_or_all(tx.company_id)


@contextlib.contextmanager
def reading(db: Database) -> Iterator[Connection]:
    """One pooled connection for a read-only use case (Core rows, no ORM session).

    On PostgreSQL one of the autocommit engine's: each statement already sees one
    consistent snapshot (READ COMMITTED gives no more inside a transaction), and no BEGIN
    and ROLLBACK round trips are paid per request.
    """
    with (db.engine if db.is_sqlite else db.autocommit_engine).connect() as conn:
        yield conn


_TX = Transaction.__table__.c
_HISTORY = StatusChange.__table__.c
_LOOKUP = (select(_TX.id, _TX.tracking_number, _TX.type, _TX.status, _TX.owner_user_id,
                  _TX.company_id, _TX.title_en, _TX.title_es, _TX.created_at, _TX.updated_at,
                  _TX.correlation_id, _TX.source, _TX.last_event_at,
                  _HISTORY.id.label("h_id"), _HISTORY.status.label("h_status"),
                  _HISTORY.at.label("h_at"), _HISTORY.actor.label("h_actor"),
                  _HISTORY.comment.label("h_comment"), _HISTORY.applied.label("h_applied"))
           .select_from(Transaction.__table__.outerjoin(
               StatusChange.__table__, _HISTORY.transaction_id == _TX.id))
           .order_by(_HISTORY.at, _HISTORY.id))
# Built once: SQLAlchemy memoises a statement object's cache key, so reusing this one
# object skips rebuilding that key on every look-up.
_LOOKUP_BY_NUMBER = _LOOKUP.where(_TX.tracking_number == bindparam("tracking_number"))
# Below SQLAlchemy's execution on PostgreSQL (see DriverStatement), which with the result's
# column descriptions cost more than the query. The driver's values are the rows' (times
# aware, put in UTC by ``history.as_utc`` when presented).
_LOOKUP_ON_DRIVER = DriverStatement(_LOOKUP_BY_NUMBER)


@dataclass(frozen=True)
class TransactionView:
    """A transaction as the look-up shows it: its row and its history rows, oldest first
    (each with ``id status at actor comment applied``)."""

    row: Any  # a Row of _LOOKUP
    history: list[dict[str, Any]]

    def __getattr__(self, name: str) -> Any:
        return getattr(self.row, name)


def find_transaction(db: Database, tracking_number: str, viewer: Viewer) -> TransactionView:
    """The transaction ``viewer`` may see, or :class:`TransactionNotFound` (no existence leak).

    ``tracking_number`` must already be valid (normalised by the caller). One statement:
    the transaction joined to its history.
    """
    rows = _LOOKUP_ON_DRIVER.all(db, {"tracking_number": tracking_number})
    if not rows or not may_see(viewer, rows[0]):
        raise TransactionNotFound(tracking_number)
    history = [{"id": r.h_id, "status": r.h_status, "at": r.h_at, "actor": r.h_actor,
                "comment": r.h_comment, "applied": r.h_applied}
               for r in rows if r.h_id is not None]
    return TransactionView(rows[0], history)


def register_transaction(session: Session, *, client_id: str, type: str, owner_user_id: str,
                         company_id: str | None, title_en: str, title_es: str,
                         status: str = Status.SUBMITTED, tracking_number: str | None = None,
                         comment: str | None = None, correlation_id: str | None = None,
                         now: datetime) -> Transaction:
    """An internal app registers one of its own transactions (``source = "app"``) at ``now``."""
    number = tracking_number or tracking_numbers.generate()
    exists = session.scalar(select(Transaction.id).where(Transaction.tracking_number == number))
    if exists is not None:
        raise TransactionExists(number)
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
                  comment: str | None = None, correlation_id: str | None = None,
                  now: datetime) -> Transaction:
    """An internal app moves one of the transactions it registered, at ``now``.

    Raises :class:`TransactionNotFound` for another app's (or an event-built)
    transaction and :class:`~.domain.IllegalTransition` for a forbidden move.
    """
    tx = session.scalar(select(Transaction).where(Transaction.tracking_number == tracking_number)
                        .with_for_update())
    if tx is None or tx.source != "app" or tx.client_id != client_id:
        raise TransactionNotFound(tracking_number)
    check_move(tx.status, status)
    move(session, tx, status, now, actor=f"client:{client_id}", comment=comment,
         correlation_id=correlation_id or tx.correlation_id)
    session.flush()
    return tx
