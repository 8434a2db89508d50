"""HTTP views of the tracking service. Access rules live in service.py."""

from __future__ import annotations

import csv
import io
from typing import Any

from flask import Response, current_app, json, request, url_for
from flask.typing import ResponseReturnValue

from services.common import powers, tracking_numbers
from services.common.api import Blueprint, documented, parse_query
from services.common.app import context, request_id
from services.common.auth import current_claims, require_auth
from services.common.errors import Problem

from .. import overview as ov
from .. import service
from ..history import as_utc
from ..idempotency import fingerprint, run_once
from .schemas import (
    LANGUAGES,
    NOT_A_TRACKING_NUMBER,
    LanguageArgsSchema,
    OverviewArgsSchema,
    OverviewSchema,
    StatusChangeSchema,
    TransactionCreateSchema,
    TransactionSchema,
)

blp = Blueprint("transactions", __name__, url_prefix="/v1",
                   description="Transactions, their status history and the tracking overview")

READ_SCOPE = "tracking.read"
WRITE_SCOPE = "tracking.write"
CSV_MAX_ROWS = 10_000
READ_SECURITY = [{"bearerAuth": [READ_SCOPE]}]
WRITE_SECURITY = [{"bearerAuth": [WRITE_SCOPE]}]


def _language(args: dict[str, Any]) -> str:
    return args.get("lang") or request.accept_languages.best_match(LANGUAGES) or "en"


def _tracking_number(raw: str) -> str:
    if not tracking_numbers.is_valid(raw):
        raise Problem(400, "invalid-tracking-number", NOT_A_TRACKING_NUMBER,
                      errors={"tracking_number": [NOT_A_TRACKING_NUMBER]})
    return tracking_numbers.normalize(raw)


class _AskedOfPermissions:
    """:class:`service.Powers` of a person, asked of permissions (a client token has none)."""

    def __init__(self, subject: str) -> None:
        self.subject = subject

    def sees_company_or_all(self, company_id: str | None) -> bool:
        checks: list[powers.Check] = [(powers.HELPDESK, None)]
        if company_id:
            checks.append((powers.COMPANY_TRANSACTIONS, {"company_id": company_id}))
        return any(powers.ask(self.subject, checks))

    def sees_company(self, company_id: str) -> bool:
        return powers.ask(self.subject, [(powers.COMPANY_TRANSACTIONS,
                                          {"company_id": company_id})])[0]


def _viewer() -> service.Viewer:
    claims = current_claims()
    company = claims.get("company_id")
    sub = claims.get("sub")
    asked = None if powers.is_client_token(claims) or not sub else _AskedOfPermissions(str(sub))
    return service.Viewer(user_id=sub, company_id=str(company) if company is not None else None,
                          powers=asked)


def _client_id() -> str:
    claims = current_claims()
    return str(claims.get("client_id") or claims.get("sub"))


def present(tx: Any, lang: str, *, history: bool) -> dict[str, Any]:
    """The JSON body of a transaction (a model, a row or a :class:`service.TransactionView`)
    exactly as ``TransactionSchema`` / ``TransactionSummarySchema`` dump it."""
    body: dict[str, Any] = {
        "tracking_number": tx.tracking_number, "type": tx.type, "status": tx.status,
        "title": tx.title_es if lang == "es" else tx.title_en,
        "owner_user_id": tx.owner_user_id, "company_id": tx.company_id,
        "created_at": as_utc(tx.created_at).isoformat(),
        "updated_at": as_utc(tx.updated_at).isoformat(),
    }
    if history:
        entries = [{"status": h["status"], "at": as_utc(h["at"]), "id": h["id"],
                    "actor": h["actor"], "comment": h["comment"], "applied": bool(h["applied"])}
                   for h in _history_of(tx)]
        entries.sort(key=lambda h: (h["at"], h["id"]))
        for h in entries:
            h["at"] = h["at"].isoformat()
            del h["id"]
        body.update(
            title_en=tx.title_en, title_es=tx.title_es, correlation_id=tx.correlation_id,
            source=tx.source, last_event_at=as_utc(tx.last_event_at).isoformat(),
            history=entries)
    return body


def _history_of(tx: Any) -> list[dict[str, Any]]:
    if isinstance(tx, service.TransactionView):
        return tx.history
    return [{"id": h.id, "status": h.status, "at": h.at, "actor": h.actor,
             "comment": h.comment, "applied": h.applied} for h in tx.history]


def _json(status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> Response:
    response = current_app.response_class(json.dumps(body), status=status,
                                          mimetype="application/json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def _idempotency_key() -> str | None:
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return None
    if not 1 <= len(key) <= 255 or not key.isprintable():
        raise Problem(400, "invalid-idempotency-key",
                      "The Idempotency-Key header must be 1-255 printable characters.")
    return key


@blp.route("/transactions", methods=["POST"])
@require_auth(WRITE_SCOPE)
@blp.arguments(TransactionCreateSchema)
@blp.response(201, TransactionSchema)
@blp.doc(security=WRITE_SECURITY, parameters=[
    {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}}])
def register(body: dict[str, Any]) -> Response:
    """Register an internal app's transaction (client_credentials, scope tracking.write)."""
    client_id, lang = _client_id(), _language({})
    if body.get("tracking_number"):
        body["tracking_number"] = tracking_numbers.normalize(body["tracking_number"])

    def use_case(session):
        tx = service.register_transaction(session, client_id=client_id, **body,
                                          correlation_id=_correlation_id(),
                                          now=context().now())
        return 201, present(tx, lang, history=True)

    status, out = run_once(context().db, client_id, _idempotency_key(),
                           fingerprint("POST", request.path, body), use_case)
    location = url_for("transactions.lookup", tracking_number=out["tracking_number"])
    return _json(status, out, {"Location": location})


@blp.route("/transactions/<tracking_number>/status", methods=["POST"])
@require_auth(WRITE_SCOPE)
@blp.arguments(StatusChangeSchema)
@blp.response(200, TransactionSchema)
@blp.doc(security=WRITE_SECURITY, parameters=[
    {"in": "header", "name": "Idempotency-Key", "schema": {"type": "string"}}])
def change_status(body: dict[str, Any], tracking_number: str) -> Response:
    """Move one of the caller's own transactions to a new status (409 if not allowed)."""
    number, client_id, lang = _tracking_number(tracking_number), _client_id(), _language({})

    def use_case(session):
        tx = service.change_status(session, client_id=client_id, tracking_number=number,
                                   correlation_id=_correlation_id(), now=context().now(),
                                   **body)
        return 200, present(tx, lang, history=True)

    status, out = run_once(context().db, client_id, _idempotency_key(),
                           fingerprint("POST", request.path, body), use_case)
    return _json(status, out)


_LANGUAGE_ARGS = LanguageArgsSchema()
_OVERVIEW_ARGS = OverviewArgsSchema()


@blp.route("/transactions/<tracking_number>", methods=["GET"], endpoint="lookup")
@require_auth(READ_SCOPE)
@documented(blp.arguments(LanguageArgsSchema, location="query"),
            blp.response(200, TransactionSchema), blp.doc(security=READ_SECURITY))
def lookup(tracking_number: str) -> ResponseReturnValue:
    """A transaction and its full status history (owner, company administrator, help desk)."""
    args = parse_query(_LANGUAGE_ARGS)
    number = _tracking_number(tracking_number)
    tx = service.find_transaction(context().db, number, _viewer())
    return current_app.json.response(present(tx, _language(args), history=True))


def _filters(args: dict[str, Any]) -> ov.Filters:
    viewer = _viewer()
    scoped: dict[str, Any] = {"owner_user_id": viewer.user_id}
    if args["scope"] == "company":
        if not (viewer.company_id and viewer.powers
                and viewer.powers.sees_company(viewer.company_id)):
            raise Problem(403, "forbidden", "Only an administrator of the company (holding "
                          "transactions.track_company) may list the company's transactions.")
        scoped = {"company_id": viewer.company_id}
    return ov.Filters(
        **scoped, statuses=tuple(dict.fromkeys(args["status"])), types=tuple(args["type"]),
        created_from=as_utc(args["created_from"]) if args["created_from"] else None,
        created_to=as_utc(args["created_to"]) if args["created_to"] else None,
        q=args["q"], sort=args["sort"])


@blp.route("/transactions", methods=["GET"])
@require_auth(READ_SCOPE)
@documented(blp.arguments(OverviewArgsSchema, location="query"),
            blp.response(200, OverviewSchema), blp.doc(security=READ_SECURITY))
def overview() -> ResponseReturnValue:
    """The Status Tracking Overview (``Accept: text/csv`` answers the CSV export)."""
    args = parse_query(_OVERVIEW_ARGS)
    if request.accept_mimetypes.best_match(["application/json", "text/csv"]) == "text/csv":
        return _csv(args)
    flt, lang = _filters(args), _language(args)
    with service.reading(context().db) as conn:
        try:
            page = ov.overview_page(conn, flt, args["limit"], args["cursor"])
        except ov.InvalidCursor as exc:
            raise Problem(422, "validation-error", "The request has invalid fields.",
                          title="Invalid request", errors={"cursor": [str(exc)]}) from None
    return current_app.json.response({
        "items": [present(tx, lang, history=False) for tx in page.items],
        "next_cursor": page.next_cursor, "counts": page.counts})


@blp.route("/transactions.csv", methods=["GET"])
@require_auth(READ_SCOPE)
@blp.arguments(OverviewArgsSchema, location="query")
@blp.response(200, content_type="text/csv", description="The overview as CSV")
@blp.doc(security=READ_SECURITY)
def overview_csv(args: dict[str, Any]) -> Response:
    """The overview's rows as CSV (same filters, no pagination, at most 10,000 rows)."""
    return _csv(args)


CSV_COLUMNS = ("tracking_number", "type", "status", "title", "created_at", "updated_at")


def safe_cell(value: Any) -> str:
    """A spreadsheet must not run a cell as a formula (CSV injection)."""
    text = "" if value is None else str(value)
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def _csv(args: dict[str, Any]) -> Response:
    flt, lang = _filters(args), _language(args)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    with context().db.read() as session:
        for tx in ov.export_rows(session, flt, CSV_MAX_ROWS):
            row = present(tx, lang, history=False)
            writer.writerow([safe_cell(row[c]) for c in CSV_COLUMNS])
    return Response(out.getvalue(), mimetype="text/csv", headers={
        "Content-Disposition": 'attachment; filename="transactions.csv"'})


def _correlation_id() -> str | None:
    """The request id (X-Request-ID when valid) follows the transaction's events."""
    return request_id()
