"""The notifier's admin API (``/v1/messages``, ``/v1/stats``), documented at ``/openapi.json``.

Every view needs a bearer token for audience ``notifier`` holding the scope
``notifier.admin`` (a client) or the help-desk platform power (a person, asked of
permissions: :mod:`services.common.powers`).
Errors, including flask-smorest's argument validation, are the kernel's problem+json.
"""

from __future__ import annotations

from typing import Any

from flask import Flask
from flask.views import MethodView

from services.common.api import Blueprint, ProblemApi
from services.common.api import init_api as init_kernel_api
from services.common.app import context
from services.common.auth import authenticate
from services.common.powers import HELPDESK, require_power

from . import service
from .schemas import (
    MessageDetailSchema,
    MessagePageSchema,
    MessageQuerySchema,
    MessageSchema,
    ResendSchema,
    StatsSchema,
)

ADMIN_SCOPE = "notifier.admin"
# A client token with ``notifier.admin``, or a person who holds the help-desk platform
# power (asked of permissions on each request, never read from the token).
require_admin = require_power(HELPDESK, scope=ADMIN_SCOPE)

blp = Blueprint("messages", __name__, url_prefix="/v1",
                description="Outgoing email: the delivery log, dead letters and statistics")
SECURED = {"security": [{"bearerAuth": []}]}


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
        if before is not None and before > service.MAX_PK:
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
            message = service.get_message(session, pk)
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
        with context().db.transaction() as session:
            return service.resend_message(session, pk, actor=actor,
                                          reason=args.get("reason", ""), now=context().now())


@blp.route("/stats")
class Stats(MethodView):
    @require_admin
    @blp.doc(**SECURED)
    @blp.response(200, StatsSchema)
    def get(self) -> dict[str, Any]:
        """Delivery statistics: messages by status, and by template and status."""
        with context().db.read() as session:
            return service.delivery_stats(session)


def init_api(app: Flask) -> ProblemApi:
    return init_kernel_api(app, title="Portico notifier", version="v1", blueprints=(blp,))
