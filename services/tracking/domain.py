"""The transaction state machine: every status and the transitions allowed between them.

No Flask and no database here: the rules are plain data so that the views, the
event handlers and the tests read the same table.
"""

from __future__ import annotations

import enum


class Status(enum.StrEnum):
    SUBMITTED = "submitted"
    IN_REVIEW = "in_review"
    APPROVED = "approved"
    REJECTED = "rejected"
    COMPLETED = "completed"
    FAILED = "failed"
    EXPIRED = "expired"
    CANCELLED = "cancelled"


TERMINAL = frozenset({Status.REJECTED, Status.COMPLETED, Status.FAILED, Status.EXPIRED,
                      Status.CANCELLED})

# Forward jumps are allowed on purpose (submitted → completed): the table is
# transitively closed, so any order of a valid event sequence reaches the same end.
TRANSITIONS: dict[Status, frozenset[Status]] = {
    Status.SUBMITTED: frozenset({Status.IN_REVIEW, Status.APPROVED, Status.REJECTED,
                                 Status.CANCELLED, Status.EXPIRED, Status.FAILED,
                                 Status.COMPLETED}),
    Status.IN_REVIEW: frozenset({Status.APPROVED, Status.REJECTED, Status.CANCELLED,
                                 Status.EXPIRED, Status.FAILED, Status.COMPLETED}),
    Status.APPROVED: frozenset({Status.COMPLETED, Status.FAILED}),
    **{status: frozenset() for status in TERMINAL},
}

STATUS_VALUES = tuple(s.value for s in Status)


class IllegalTransition(Exception):
    """A status change the state machine forbids (answered 409 by the API)."""

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(f"A transaction cannot move from {current} to {requested}.")
        self.current = current
        self.requested = requested


def can_move(current: str, new: str) -> bool:
    return Status(new) in TRANSITIONS[Status(current)]


def check_move(current: str, new: str) -> None:
    if not can_move(current, new):
        raise IllegalTransition(current, new)


class TransactionNotFound(Exception):
    """No transaction the caller may see has this tracking number."""


class TransactionExists(Exception):
    """A transaction with this tracking number is already registered."""


class IdempotencyKeyReused(Exception):
    """An Idempotency-Key was used before with a different request."""
