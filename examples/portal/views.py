"""The home page and its two forms (ask for entitlements; approve or reject a request), and
the cards page (cancel a card). Cancelling a card and approving a request may ask for a
stronger sign-in first (:mod:`step_up`)."""

from __future__ import annotations

import re
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

from . import step_up
from .apis import STEP_UP_REQUIRED, ApiError, Portico
from .auth import SignedOut, access_token, current_user, step_up_redirect
from .layout import current_language

bp = Blueprint("portal", __name__)
DECISIONS = ("approve", "reject")
LAST5 = re.compile(r"\d{5}")
CANCEL_CARD = "cards.cancel"


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
    return _decide(record, {"request_id": request_id, "decision": decision,
                            "comment": comment}, resumed=False)


@step_up.finisher("decide")
def _decide_after_step_up(record: dict[str, Any], params: dict[str, Any]):
    return _decide(record, params, resumed=True)


def _decide(record: dict[str, Any], params: dict[str, Any], *, resumed: bool):
    """Approve or reject; an approval permissions refuses for want of a stronger sign-in
    goes to Portico for it (once: after the step-up, a refusal is final)."""
    try:
        decided = _portico(record).decide(params["request_id"], params["decision"],
                                          params["comment"])
    except ApiError as error:
        if error.step_up and error.acr:
            return _step_up(record, "decide", params, error.acr, resumed=resumed,
                            back=url_for("portal.home"))
        _flash_problem(error)
    else:
        flash(gettext("Request %(tracking)s %(status)s.", tracking=decided.get("tracking_number"),
                      status=decided.get("status")), "success")
    return redirect(url_for("portal.home"), 303)


@bp.get("/cards")
def cards():
    """The company's cards (last five digits only), each with "Cancel card", and the
    cancellations recorded here."""
    record = _signed_in()
    company_id = record.get("company_id")
    company, company_error = (_part(_portico(record).company, company_id) if company_id
                              else (None, None))
    return render_template(
        "cards.html", user=record, company=company, company_error=company_error,
        accounts=(company or {}).get("accounts", []),
        cancelled=_cards().cancelled(company_id) if company_id else {})


@bp.get("/cards/cancel")
def cards_cancel():
    """The home page's "Cancel a card" tile: the cards page, where each card has its button."""
    return redirect(url_for("portal.cards"), 303)


@bp.post("/cards/<last5>/cancel")
def cancel_card(last5: str):
    record = _signed_in()
    if not LAST5.fullmatch(last5) or not record.get("company_id"):
        abort(404)
    return _cancel_card(record, {"last5": last5}, resumed=False)


@step_up.finisher("cancel_card")
def _cancel_card_after_step_up(record: dict[str, Any], params: dict[str, Any]):
    return _cancel_card(record, params, resumed=True)


def _cancel_card(record: dict[str, Any], params: dict[str, Any], *, resumed: bool):
    """Ask permissions whether this sign-in may cancel the card, then record it. A
    ``step_up_required`` answer goes to Portico for the level (once: after the step-up,
    the answer is final, so a sign-in that did not reach it cancels nothing)."""
    last5 = params["last5"]
    back = url_for("portal.cards")
    resource = {"company_id": record["company_id"], "account_last5": last5}
    try:
        answer = _portico(record).check(record["sub"], CANCEL_CARD, resource)
    except ApiError as error:
        _flash_problem(error)
        return redirect(back, 303)
    if answer.get("reason") == STEP_UP_REQUIRED and answer.get("acr"):
        return _step_up(record, "cancel_card", params, answer["acr"], resumed=resumed, back=back)
    if not answer.get("allowed"):
        flash(gettext("You may not cancel the card ending %(last5)s.", last5=last5), "error")
    elif _cards().cancel(record["company_id"], last5, record.get("name") or record["sub"]):
        flash(gettext("Card ending %(last5)s cancelled.", last5=last5), "success")
    else:
        flash(gettext("The card ending %(last5)s was cancelled already.", last5=last5), "error")
    return redirect(back, 303)


def _step_up(record: dict[str, Any], kind: str, params: dict[str, Any], acr: str, *,
             resumed: bool, back: str):
    """Send the user to Portico for ``acr`` with the action pending, unless this is the
    action coming back from that very step-up (then it is refused, and forgotten)."""
    if not resumed:
        store = current_app.extensions["portal.sessions"]
        with store.lock(session["sid"]):
            # As stored now: this request may have refreshed the tokens since ``record``
            # was read, and saving the old ones would spend a used refresh token later.
            current = store.load(session["sid"]) or record
            wanted = step_up.remember(current, kind, params, acr)
            if wanted is not None:
                store.save(session["sid"], current)
        if wanted is not None:
            return step_up_redirect(wanted)
    flash(gettext("This needs a stronger sign-in (a code from your authenticator app), "
                  "which was not given. Nothing was done."), "error")
    return redirect(back, 303)


def _cards():
    return current_app.extensions["portal.cards"]


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
