"""RFC 9457 problem details: the one shape of every JSON API error."""

from __future__ import annotations

from http import HTTPStatus
from typing import Any

import redis
import sqlalchemy.exc
from flask import Response, json

PROBLEM_JSON = "application/problem+json"
PROBLEM_BASE = "https://portico.dev/problems/"


class Problem(Exception):
    """Raise anywhere in a request to answer with ``application/problem+json``.

    ``kind`` becomes the stable ``type`` URI; ``errors`` maps dotted field names
    to lists of messages.
    """

    def __init__(self, status: int, kind: str | None = None, detail: str | None = None, *,
                 title: str | None = None, errors: dict[str, list[str]] | None = None,
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail or kind or str(status))
        self.status = status
        self.kind = kind or _default_kind(status)
        self.title = title or HTTPStatus(status).phrase
        self.detail = detail
        self.errors = errors
        self.headers = headers or {}
        self.extra = extra

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": PROBLEM_BASE + self.kind,
            "title": self.title,
            "status": self.status,
        }
        if self.detail:
            body["detail"] = self.detail
        if self.errors:
            body["errors"] = self.errors
        body.update(self.extra)
        return body


class Conflict(Problem):
    """An illegal state transition or a duplicate: 409 everywhere."""

    def __init__(self, detail: str, kind: str = "conflict", **extra: Any) -> None:
        super().__init__(409, kind, detail, **extra)


class NotFound(Problem):
    def __init__(self, detail: str = "The resource was not found.", kind: str = "not-found") -> None:
        super().__init__(404, kind, detail)


def _default_kind(status: int) -> str:
    try:
        return HTTPStatus(status).phrase.lower().replace(" ", "-").replace("'", "")
    except ValueError:
        return "error"


def problem_response(problem: Problem, request_id: str | None = None) -> Response:
    body = problem.body()
    if request_id:
        body["request_id"] = request_id
    response = Response(json.dumps(body), status=problem.status, mimetype=PROBLEM_JSON)
    for key, value in problem.headers.items():
        response.headers[key] = value
    return response


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict → ``{"company.tax_id": [...], "account_numbers.0": [...]}``."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            if key == "_schema" and prefix:
                name = prefix
            flat.update(flatten_errors(value, name))
    elif isinstance(messages, list | tuple):
        if all(isinstance(m, str) for m in messages):
            flat.setdefault(prefix or "_schema", []).extend(messages)
        else:
            for item in messages:
                flat.update(flatten_errors(item, prefix))
    else:
        flat.setdefault(prefix or "_schema", []).append(str(messages))
    return flat


INVALID_TITLE = "Invalid request"


def validation_problem(messages: Any, detail: str = "The request has invalid fields.") -> Problem:
    return Problem(422, "validation-error", detail, title=INVALID_TITLE,
                   errors=flatten_errors(messages))


# A database or Redis that cannot be reached (refused, lost, timed out, pool exhausted)
# or a transaction the database aborted as transient (deadlock, serialization): the
# client may retry, so 503 with Retry-After, not a 500 that reads as a bug.
DEPENDENCY_ERRORS: tuple[type[Exception], ...] = (
    sqlalchemy.exc.OperationalError, sqlalchemy.exc.InterfaceError, sqlalchemy.exc.TimeoutError,
    redis.ConnectionError, redis.TimeoutError,
)
RETRY_DEPENDENCY_AFTER = "5"


def unavailable_problem() -> Problem:
    """503 for a dependency that cannot answer (see ``DEPENDENCY_ERRORS``)."""
    return Problem(503, "unavailable", "The service is temporarily unavailable.",
                   headers={"Retry-After": RETRY_DEPENDENCY_AFTER})
