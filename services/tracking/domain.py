"""The transaction state machine: every status and the transitions allowed between them.

No Flask and no database here: the rules are plain data so that the views, the
event handlers and the tests read the same table. The refusals are the kernel's
(:mod:`services.common.domain_errors`), answered as problem+json by the app factory.
"""

from __future__ import annotations

import enum

from services.common import domain_errors


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


class IllegalTransition(domain_errors.IllegalTransition):
    """A status change the state machine forbids; the answer names both statuses."""

    def __init__(self, current: str, requested: str) -> None:
        super().__init__(f"A transaction cannot move from {current} to {requested}.",
                         current_status=current, requested_status=requested)
        self.current = current
        self.requested = requested


def can_move(current: str, new: str) -> bool:
    return Status(new) in TRANSITIONS[Status(current)]


def check_move(current: str, new: str) -> None:
    if not can_move(current, new):
        raise IllegalTransition(current, new)


class TransactionNotFound(domain_errors.NotFound):
    """No transaction the caller may see has this tracking number (the answer says no
    more, so that it leaks nothing about another's transaction)."""

    def __init__(self, tracking_number: str) -> None:
        super().__init__("No transaction with this tracking number was found.")
        self.tracking_number = tracking_number


class TransactionExists(domain_errors.Conflict):
    """A transaction with this tracking number is already registered."""

    def __init__(self, tracking_number: str) -> None:
        super().__init__("A transaction with this tracking number is already registered.",
                         kind="transaction-exists")
        self.tracking_number = tracking_number


class IdempotencyKeyReused(domain_errors.Invalid):
    """An Idempotency-Key was used before with a different request."""

    def __init__(self, key: str) -> None:
        super().__init__(detail="This Idempotency-Key was already used with a different "
                                "request.", kind="idempotency-key-reused")
        self.key = key
