"""The home page and its two forms (ask for entitlements; approve or reject a request)."""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext

from .apis import ApiError, Portico
from .auth import SignedOut, access_token, current_user
from .layout import current_language

bp = Blueprint("portal", __name__)
DECISIONS = ("approve", "reject")


def _settings():
    return current_app.extensions["portal.settings"]


def _portico(record: dict[str, Any]) -> Portico:
    return Portico(_settings(), access_token(record), current_language())


def _part(call, *args):
    """(value, None) or (None, message): one failing API spoils only its own section."""
    try:
        return call(*args), None
    except ApiError as error:
        if error.status == 401:
            raise SignedOut() from None
        return None, error.message


@bp.get("/")
def home():
    record = current_user()
    if record is None:
        return render_template("home.html", user=None)
    portico = _portico(record)
    sections, sections_error = _part(portico.home, record["sub"])
    overview, overview_error = _part(portico.overview)
    catalog, catalog_error = _part(portico.catalog)
    mine, mine_error = _part(portico.access_requests, "mine")
    company = None
    if record.get("company_id"):
        company, _ = _part(portico.company, record["company_id"])
    principal = bool(company and company.get("principal_user_id") == record["sub"])
    inbox, inbox_error = _part(portico.access_requests, "to_decide") if principal else (None, None)
    return render_template(
        "home.html", user=record, principal=principal,
        sections=sections or [], sections_error=sections_error,
        transactions=(overview or {}).get("items", []), overview_error=overview_error,
        catalog=catalog or [], catalog_error=catalog_error,
        my_requests=mine or [], mine_error=mine_error,
        inbox=inbox or [], inbox_error=inbox_error)


@bp.post("/access-requests")
def request_access():
    record = _signed_in()
    entitlements = request.form.getlist("entitlements")
    justification = request.form.get("justification", "").strip()
    if not entitlements or not justification:
        flash(gettext("Choose at least one entitlement and say why you need it."), "error")
        return redirect(url_for("portal.home"), 303)
    try:
        created = _portico(record).request_access(entitlements, justification)
    except ApiError as error:
        _flash_problem(error)
    else:
        flash(gettext("Request sent. Tracking number %(tracking)s.",
                      tracking=created.get("tracking_number")), "success")
    return redirect(url_for("portal.home"), 303)


@bp.post("/access-requests/<request_id>/decision")
def decide(request_id: str):
    record = _signed_in()
    decision = request.form.get("decision")
    if decision not in DECISIONS:
        abort(400, description=gettext("Choose approve or reject."))
    comment = request.form.get("comment", "").strip() or None
    try:
        decided = _portico(record).decide(request_id, decision, comment)
    except ApiError as error:
        _flash_problem(error)
    else:
        flash(gettext("Request %(tracking)s %(status)s.", tracking=decided.get("tracking_number"),
                      status=decided.get("status")), "success")
    return redirect(url_for("portal.home"), 303)


@bp.get("/healthz")
def healthz():
    return {"status": "ok"}


def _signed_in() -> dict[str, Any]:
    record = current_user()
    if record is None:
        raise SignedOut()
    return record


def _flash_problem(error: ApiError) -> None:
    if error.status == 401:
        raise SignedOut()
    details = "; ".join(f"{field}: {' '.join(msgs)}" for field, msgs in error.errors.items())
    flash(f"{error.message} {details}".strip(), "error")


def signed_out(_error: SignedOut):
    session.pop("sid", None)
    flash(gettext("Your session has ended. Please sign in again."), "error")
    return redirect(url_for("portal.home"), 303)
