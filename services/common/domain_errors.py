"""The refusals a use case raises: one hierarchy for every service, no HTTP in it.

A use case says *why* it refuses (the thing is missing, the state forbids it, the
caller may not, the input is wrong); :func:`services.common.app.create_service_app`
answers each with application/problem+json, in one place. ``kind`` becomes the
problem's stable ``type``; ``detail`` its human sentence; ``extra`` members are
added to the body (e.g. the current and requested status of an illegal transition).
"""

from __future__ import annotations

from typing import Any


class DomainError(Exception):
    """Base of every refusal a use case raises."""

    kind = "error"
    # Per-field messages (``{"current_password": ["..."]}``) when a field is to blame.
    errors: dict[str, list[str]] | None = None

    def __init__(self, detail: str, kind: str | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.detail = detail
        if kind:
            self.kind = kind
        self.extra = extra


class NotFound(DomainError):
    """The thing does not exist, or the caller may not know that it does (404)."""

    kind = "not-found"


class Conflict(DomainError):
    """The action conflicts with the current state of the data (409)."""

    kind = "conflict"


class IllegalTransition(Conflict):
    """The thing is not in a state that allows this change (409)."""

    kind = "illegal-transition"


class Forbidden(DomainError):
    """The caller may not do this, whatever their token says (403)."""

    kind = "forbidden"


class Invalid(DomainError):
    """The request cannot be carried out as given (422), with per-field messages when a
    field is to blame, e.g. ``{"entitlements.0": ["..."]}``."""

    kind = "validation-error"

    def __init__(self, errors: dict[str, list[str]] | None = None,
                 detail: str = "The request has invalid fields.", kind: str | None = None,
                 **extra: Any) -> None:
        super().__init__(detail, kind, **extra)
        self.errors = errors
