"""marshmallow fields shared by the services' schemas, and plain text read as a number."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from marshmallow import fields


class UTCDateTime(fields.DateTime):
    """An RFC 3339 date-time that always carries its offset.

    Every time is stored in UTC, but SQLite hands back naive datetimes for
    ``DateTime(timezone=True)`` columns; dumping one would drop the offset and
    break the OpenAPI ``date-time`` format.
    """

    def _serialize(self, value: datetime | None, attr: str | None, obj: Any, **kwargs: Any):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return super()._serialize(value, attr, obj, **kwargs)


def whole_number(raw: str | None) -> int | None:
    """``raw`` as a non-negative integer if it is one written in ASCII digits, else None.

    Not ``str.isdigit`` alone: it accepts digits ``int`` refuses ("²"), which made a
    client's query parameter a 500."""
    if raw is None or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)
