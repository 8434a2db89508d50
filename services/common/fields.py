"""Plain text read as a number."""

from __future__ import annotations


def whole_number(raw: str | None) -> int | None:
    """``raw`` as a non-negative integer if it is one written in ASCII digits, else None.

    Not ``str.isdigit`` alone: it accepts digits ``int`` refuses ("²"), which made a
    client's query parameter a 500."""
    if raw is None or not (raw.isascii() and raw.isdigit()):
        return None
    return int(raw)
