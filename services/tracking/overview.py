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
from typing import Any

from sqlalchemy import ColumnElement, Select, func, or_, select, tuple_
from sqlalchemy.engine import Connection, Row
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


# Read-only paths select the table's plain columns (Core rows, not ORM entities): far
# less work per statement built and per row loaded.
_T = Transaction.__table__.c
SUMMARY_COLUMNS = (_T.id, _T.tracking_number, _T.type,
                   _T.status, _T.title_en, _T.title_es,
                   _T.owner_user_id, _T.company_id, _T.created_at,
                   _T.updated_at)


@dataclass
class Page:
    items: list[Row[Any]]
    next_cursor: str | None
    counts: dict[str, int]


def encode_cursor(tx: Any, sort: str) -> str:
    raw = json.dumps({"t": tx.created_at.isoformat(), "i": tx.id, "s": sort},
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
        stmt = stmt.where(_T.owner_user_id == flt.owner_user_id)
    if flt.company_id is not None:
        stmt = stmt.where(_T.company_id == flt.company_id)
    if with_status and flt.statuses:
        stmt = stmt.where(_T.status.in_(list(flt.statuses)))
    if flt.types:
        stmt = stmt.where(_T.type.in_(list(flt.types)))
    if flt.created_from is not None:
        stmt = stmt.where(_T.created_at >= flt.created_from)
    if flt.created_to is not None:
        stmt = stmt.where(_T.created_at < flt.created_to)
    if flt.q:
        pattern = _like_pattern(flt.q.strip())
        matches: list[ColumnElement[bool]] = [_T.title_en.ilike(pattern, escape="\\"),
                   _T.title_es.ilike(pattern, escape="\\"),
                   _T.tracking_number.ilike(pattern, escape="\\")]
        if tracking_numbers.is_valid(flt.q):
            matches.append(_T.tracking_number == tracking_numbers.normalize(flt.q))
        stmt = stmt.where(or_(*matches))
    return stmt


def _ordered(stmt: Select, sort: str) -> Select:
    if sort == "asc":
        return stmt.order_by(_T.created_at.asc(), _T.id.asc())
    return stmt.order_by(_T.created_at.desc(), _T.id.desc())


def status_counts(session: Connection | Session, flt: Filters) -> dict[str, int]:
    """Rows per status under every filter but ``status`` (so a UI can show each tab's size)."""
    stmt = _filtered(select(_T.status, func.count()), flt, with_status=False)
    found = {status: n for status, n in session.execute(stmt.group_by(_T.status))}
    return {status: int(found.get(status, 0)) for status in STATUS_VALUES}


def overview_page(session: Connection | Session, flt: Filters, limit: int,
                  cursor: str | None = None) -> Page:
    stmt = _filtered(select(*SUMMARY_COLUMNS), flt)
    if cursor:
        created, row_id = decode_cursor(cursor, flt.sort)
        key = tuple_(_T.created_at, _T.id)
        stmt = stmt.where(key > tuple_(created, row_id) if flt.sort == "asc"
                          else key < tuple_(created, row_id))
    rows = list(session.execute(_ordered(stmt, flt.sort).limit(limit + 1)))
    next_cursor = encode_cursor(rows[limit - 1], flt.sort) if len(rows) > limit else None
    return Page(items=rows[:limit], next_cursor=next_cursor, counts=status_counts(session, flt))


def export_rows(session: Session, flt: Filters, max_rows: int) -> Iterator[Row[Any]]:
    """Every matching row (up to ``max_rows``), streamed in pages of 500."""
    stmt = _ordered(_filtered(select(*SUMMARY_COLUMNS), flt), flt.sort).limit(max_rows)
    yield from session.execute(stmt.execution_options(yield_per=500))
