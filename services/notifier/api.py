"""The notifier's admin API (``/v1/messages``, ``/v1/stats``), documented at ``/openapi.json``.

Every view needs a bearer token for audience ``notifier`` holding the scope
``notifier.admin`` (a client) or the help-desk platform power (a person, asked of
permissions: :mod:`services.common.powers`).
Errors, including flask-smorest's argument validation, are the kernel's problem+json.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NoReturn, TypeVar, cast

from flask import Flask
from flask.views import MethodView
from flask_smorest import Api, Blueprint
from marshmallow import ValidationError
from webargs.flaskparser import FlaskParser

from services.common.app import context
from services.common.auth import authenticate
from services.common.errors import Conflict, NotFound
from services.common.powers import HELPDESK, require_power

from . import service
from .models import IllegalTransition
from .schemas import (
    MessageDetailSchema,
    MessagePageSchema,
    MessageQuerySchema,
    MessageSchema,
    ResendSchema,
    StatsSchema,
)

ADMIN_SCOPE = "notifier.admin"
F = TypeVar("F", bound=Callable[..., Any])


class ProblemParser(FlaskParser):
    """Turns webargs' 422 into a marshmallow ValidationError for the kernel's handler."""

    def handle_error(self, error: ValidationError, req: Any, schema: Any, *,
                     error_status_code: int | None, error_headers: Any) -> NoReturn:
        messages = error.messages
        # webargs nests messages under the location ("query", "json"); fields are unique.
        if isinstance(messages, dict) and set(messages) <= {"query", "json", "form", "view_args"}:
            flat: dict[str, Any] = {}
            for part in messages.values():
                flat.update(part if isinstance(part, dict) else {"_schema": part})
            messages = flat
        raise ValidationError(messages)


class ApiBlueprint(Blueprint):
    ARGUMENTS_PARSER = ProblemParser()


class KernelErrorsApi(Api):
    """flask-smorest without its JSON error handler: the kernel's problem+json stays."""

    def _register_error_handlers(self) -> None:
        pass


def require_admin(view: F) -> F:
    """A client token with ``notifier.admin``, or a person who holds the help-desk platform
    power (asked of permissions on each request, never read from the token)."""
    return cast(F, require_power(HELPDESK, scope=ADMIN_SCOPE)(view))


blp = ApiBlueprint("messages", __name__, url_prefix="/v1",
                   description="Outgoing email: the delivery log, dead letters and statistics")
SECURED = {"security": [{"bearerAuth": []}]}
# Ids are SQL INTEGER: a larger number names no row, and PostgreSQL refuses to bind it.
MAX_PK = 2**31 - 1


def _message(session: Any, pk: int) -> Any:
    if pk > MAX_PK:
        raise NotFound("No message with this id.")
    try:
        return service.get_message(session, pk)
    except service.MessageNotFound:
        raise NotFound("No message with this id.") from None


@blp.route("/messages")
class Messages(MethodView):
    @require_admin
    @blp.doc(**SECURED)
    @blp.arguments(MessageQuerySchema, location="query")
    @blp.response(200, MessagePageSchema)
    def get(self, args: dict[str, Any]) -> dict[str, Any]:
        """List messages, newest first, with filters and cursor pagination."""
        filters = service.MessageFilter(status=args["status"], template=args["template"],
                                        recipient=args["recipient"],
                                        tracking_number=args["tracking_number"],
                                        event_id=args["event_id"])
        before = int(args["cursor"]) if args["cursor"] else None
        if before is not None and before > MAX_PK:
            before = None  # every id is below it
        with context().db.read() as session:
            items, next_pk = service.list_messages(session, filters, before=before,
                                                   limit=args["limit"])
            session.expunge_all()  # dumped after the read session ends
        return {"items": items, "next_cursor": str(next_pk) if next_pk else None}


@blp.route("/messages/<int:pk>")
class Message(MethodView):
    @require_admin
    @blp.doc(**SECURED)
    @blp.response(200, MessageDetailSchema)
    def get(self, pk: int) -> Any:
        """One message with its delivery attempts; never a body that carried a secret."""
        with context().db.read() as session:
            message = _message(session, pk)
            message.delivery_attempts = service.attempts_of(session, pk)
            session.expunge_all()
        return message


@blp.route("/messages/<int:pk>/resend")
class Resend(MethodView):
    @require_admin
    @blp.doc(**SECURED)
    @blp.arguments(ResendSchema, required=False)
    @blp.response(200, MessageSchema)
    def post(self, args: dict[str, Any], pk: int) -> Any:
        """Queue a dead-lettered message again (attempts reset; audited)."""
        actor = str(authenticate().get("sub") or "unknown")
        if pk > MAX_PK:
            raise NotFound("No message with this id.")
        try:
            with context().db.transaction() as session:
                message = service.resend_message(session, pk, actor=actor,
                                                 reason=args.get("reason", ""))
            return message
        except service.MessageNotFound:
            raise NotFound("No message with this id.") from None
        except IllegalTransition as exc:
            raise Conflict(f"Only a dead message can be resent; this one is {exc.current.value}.",
                           kind="illegal-transition") from None
        except service.BodiesGone:
            raise Conflict("The message's bodies were purged; it cannot be resent.",
                           kind="bodies-purged") from None


@blp.route("/stats")
class Stats(MethodView):
    @require_admin
    @blp.doc(**SECURED)
    @blp.response(200, StatsSchema)
    def get(self) -> dict[str, Any]:
        """Delivery statistics: messages by status, and by template and status."""
        with context().db.read() as session:
            return service.delivery_stats(session)


def init_api(app: Flask) -> Api:
    app.config.update(API_TITLE="Portico notifier", API_VERSION="v1", OPENAPI_VERSION="3.0.3",
                      OPENAPI_URL_PREFIX="/", OPENAPI_JSON_PATH="openapi.json")
    api = KernelErrorsApi(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"})
    api.register_blueprint(blp)
    return api
