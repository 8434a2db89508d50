"""The transaction state machine, cursors and CSV cell escaping (no I/O)."""

from __future__ import annotations

from datetime import UTC, datetime
from types import SimpleNamespace

import pytest

from services.tracking.api.views import safe_cell
from services.tracking.domain import (
    TERMINAL,
    TRANSITIONS,
    IllegalTransition,
    Status,
    can_move,
    check_move,
)
from services.tracking.overview import InvalidCursor, decode_cursor, encode_cursor


def test_every_status_has_a_row_and_terminal_ones_lead_nowhere():
    assert set(TRANSITIONS) == set(Status)
    for status in TERMINAL:
        assert TRANSITIONS[status] == frozenset()


@pytest.mark.parametrize("current,new,allowed", [
    ("submitted", "in_review", True), ("submitted", "completed", True),
    ("in_review", "approved", True), ("in_review", "submitted", False),
    ("approved", "completed", True), ("approved", "failed", True),
    ("approved", "rejected", False), ("approved", "in_review", False),
    ("completed", "failed", False), ("rejected", "approved", False),
    ("submitted", "submitted", False),
])
def test_allowed_transitions(current, new, allowed):
    assert can_move(current, new) is allowed


def test_the_table_is_transitively_closed_so_forward_jumps_are_allowed():
    for start, nexts in TRANSITIONS.items():
        for middle in nexts:
            assert TRANSITIONS[middle] <= nexts, (start, middle)


def test_illegal_transition_is_one_exception():
    with pytest.raises(IllegalTransition) as raised:
        check_move("completed", "in_review")
    assert raised.value.current == "completed"
    assert raised.value.requested == "in_review"


def test_cursor_round_trip_and_rejections():
    row = SimpleNamespace(created_at=datetime(2026, 1, 2, 3, 4, 5, 6789, tzinfo=UTC), id=42)
    cursor = encode_cursor(row, "desc")
    assert decode_cursor(cursor, "desc") == (row.created_at, 42)
    with pytest.raises(InvalidCursor):
        decode_cursor(cursor, "asc")
    for bad in ("garbage!", "e30", ""):
        with pytest.raises(InvalidCursor):
            decode_cursor(bad, "desc")


@pytest.mark.parametrize("value,expected", [
    ("=SUM(A1)", "'=SUM(A1)"), ("+1", "'+1"), ("-2", "'-2"), ("@cmd", "'@cmd"),
    ("Enrollment", "Enrollment"), (None, ""), ("a=b", "a=b"),
])
def test_csv_cells_never_start_a_formula(value, expected):
    assert safe_cell(value) == expected
