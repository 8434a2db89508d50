"""What identity's JSON APIs share on top of the kernel's (services/common/api.py): the
tags of the OpenAPI document, and a parser that answers as identity always has.

A request body that is not a JSON object is 400 ``bad-request``; invalid fields are the
kernel's 422 problem, its messages in the caller's language (each flow passes the
gettext of its own catalog).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any, NoReturn

from flask import request
from marshmallow import Schema, ValidationError

from services.common import api
from services.common.errors import INVALID_TITLE, Problem, flatten_errors

Gettext = Callable[[str], str]

ENROLLMENT = "Enrollment"
LIFECYCLE = "Account lifecycle"
CLIENTS = "Clients admin"
OAUTH = "OAuth 2.0 / OIDC"
PASSKEYS = "Passkeys"
TAGS = (
    {"name": ENROLLMENT, "description": "Enrollment, email verification, first login."},
    {"name": LIFECYCLE, "description": "Recovery, profile and help-desk actions."},
    {"name": CLIENTS, "description": "OIDC client registration (scope `iam.admin`)."},
    {"name": PASSKEYS, "description": "WebAuthn ceremonies of the pages (login session "
                                      "cookie and its CSRF token in `X-CSRF-Token`)."},
    {"name": OAUTH, "description": "Form-encoded OAuth 2.0 / OIDC endpoints. Errors are "
                                   "RFC 6749 §5.2 / RFC 6750 bodies, not problem+json."},
)

# The security requirement of an operation that needs a bearer token (its scope or
# platform power is in the operation's summary).
BEARER = [{"bearerAuth": []}]
NO_STORE = {"Cache-Control": "no-store"}
NO_STORE_DOC = {"Cache-Control": {"schema": {"type": "string", "enum": ["no-store"]}}}


def untranslated(message: str) -> str:
    return message


def json_object(gettext: Gettext = untranslated) -> dict[str, Any]:
    """The request's body, which must be a JSON object (else 400 ``bad-request``)."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise Problem(400, "bad-request", gettext("The body must be a JSON object."))
    return body


def text_in(body: dict[str, Any], name: str) -> str | None:
    """``body[name]`` when it is a string (the target a rate limit counts), else None."""
    value = body.get(name)
    return value if isinstance(value, str) else None


def counted_first(count: Callable[[dict[str, Any]], None],
                  gettext: Gettext = untranslated) -> Callable[[Any], Any]:
    """A view whose every request is counted, ``count(body)`` (a rate limit, refusing with
    429), once its body is a JSON object and before that body is validated: an invalid
    request counts too."""

    def decorate(view: Any) -> Any:
        @wraps(view)
        def counted(*args: Any, **kwargs: Any) -> Any:
            count(json_object(gettext))
            return view(*args, **kwargs)

        return counted

    return decorate


class JsonObjectParser(api.ProblemParser):
    """The kernel's parser; a JSON body must be an object, and field messages are
    translated with ``gettext``."""

    def __init__(self, gettext: Gettext) -> None:
        super().__init__()
        self.gettext = gettext

    def load_json(self, req: Any, schema: Schema) -> dict[str, Any]:
        return json_object(self.gettext)

    def _on_validation_error(self, error: ValidationError, req: Any, schema: Any,
                             location: str, *, error_status_code: Any,
                             error_headers: Any) -> NoReturn:
        _ = self.gettext
        raise Problem(422, "validation-error", _("The request has invalid fields."),
                      title=INVALID_TITLE, errors={
                          name: [_(message) for message in messages]
                          for name, messages in flatten_errors(error.messages).items()})


class Blueprint(api.Blueprint):
    """The kernel's blueprint, parsing with :class:`JsonObjectParser` in ``gettext``'s
    language."""

    def __init__(self, *args: Any, gettext: Gettext = untranslated, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.ARGUMENTS_PARSER = JsonObjectParser(gettext)
