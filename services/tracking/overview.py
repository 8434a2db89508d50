"""The Status Tracking Overview: filtered, keyset-paginated lists and their counts.

Pages are ordered by ``(created_at, id)`` and continued with an opaque cursor that
holds the last row's key, so rows inserted while someone pages never shift a page
(no duplicates, no skips), unlike OFFSET.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Select, func, or_, select, tuple_
from sqlalchemy.orm import Session

from services.common import tracking_numbers

from .domain import STATUS_VALUES
from .history import as_utc
from .models import Transaction


class InvalidCursor(ValueError):
    """The cursor was not made by this service for this sort order."""


@dataclass(frozen=True)
class Filters:
    """Exactly one of ``owner_user_id`` / ``company_id`` scopes the list."""

    owner_user_id: str | None = None
    company_id: str | None = None
    statuses: Sequence[str] = ()
    types: Sequence[str] = ()
    created_from: datetime | None = None
    created_to: datetime | None = None
    q: str | None = None
    sort: str = "desc"


@dataclass
class Page:
    items: list[Transaction]
    next_cursor: str | None
    counts: dict[str, int]


def encode_cursor(tx: Transaction, sort: str) -> str:
    raw = json.dumps({"t": as_utc(tx.created_at).isoformat(), "i": tx.id, "s": sort},
                     separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[datetime, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        obj = json.loads(base64.urlsafe_b64decode(padded.encode()))
        created, row_id, cursor_sort = datetime.fromisoformat(obj["t"]), int(obj["i"]), obj["s"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeError):
        raise InvalidCursor("The cursor is not valid.") from None
    if cursor_sort != sort:
        raise InvalidCursor("The cursor belongs to another sort order.")
    return as_utc(created), row_id


def _like_pattern(text: str) -> str:
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def _filtered(stmt: Select, flt: Filters, *, with_status: bool = True) -> Select:
    if flt.owner_user_id is not None:
        stmt = stmt.where(Transaction.owner_user_id == flt.owner_user_id)
    if flt.company_id is not None:
        stmt = stmt.where(Transaction.company_id == flt.company_id)
    if with_status and flt.statuses:
        stmt = stmt.where(Transaction.status.in_(list(flt.statuses)))
    if flt.types:
        stmt = stmt.where(Transaction.type.in_(list(flt.types)))
    if flt.created_from is not None:
        stmt = stmt.where(Transaction.created_at >= flt.created_from)
    if flt.created_to is not None:
        stmt = stmt.where(Transaction.created_at < flt.created_to)
    if flt.q:
        pattern = _like_pattern(flt.q.strip())
        matches = [Transaction.title_en.ilike(pattern, escape="\\"),
                   Transaction.title_es.ilike(pattern, escape="\\"),
                   Transaction.tracking_number.ilike(pattern, escape="\\")]
        if tracking_numbers.is_valid(flt.q):
            matches.append(Transaction.tracking_number == tracking_numbers.normalize(flt.q))
        stmt = stmt.where(or_(*matches))
    return stmt


def _ordered(stmt: Select, sort: str) -> Select:
    if sort == "asc":
        return stmt.order_by(Transaction.created_at.asc(), Transaction.id.asc())
    return stmt.order_by(Transaction.created_at.desc(), Transaction.id.desc())


def status_counts(session: Session, flt: Filters) -> dict[str, int]:
    """Rows per status under every filter but ``status`` (so a UI can show each tab's size)."""
    stmt = _filtered(select(Transaction.status, func.count()), flt, with_status=False)
    found = {status: n for status, n in session.execute(stmt.group_by(Transaction.status))}
    return {status: int(found.get(status, 0)) for status in STATUS_VALUES}


def overview_page(session: Session, flt: Filters, limit: int, cursor: str | None = None) -> Page:
    stmt = _filtered(select(Transaction), flt)
    if cursor:
        created, row_id = decode_cursor(cursor, flt.sort)
        key = tuple_(Transaction.created_at, Transaction.id)
        stmt = stmt.where(key > tuple_(created, row_id) if flt.sort == "asc"
                          else key < tuple_(created, row_id))
    rows = list(session.scalars(_ordered(stmt, flt.sort).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1], flt.sort) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor, counts=status_counts(session, flt))


def export_rows(session: Session, flt: Filters, max_rows: int) -> Iterator[Transaction]:
    """Every matching row (up to ``max_rows``), streamed in pages of 500."""
    stmt = _ordered(_filtered(select(Transaction), flt), flt.sort).limit(max_rows)
    yield from session.scalars(stmt.execution_options(yield_per=500))
