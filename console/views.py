"""The help-desk screens: search users, a user's page, and the actions on a user (each with
a required reason; the tracking number identity returns is shown).

Every call goes to identity with the signed-in person's token: a person without the
help-desk power gets identity's refusal, whatever the console shows or is sent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, NoReturn

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext

from .auth import SignedOut, access_token, current_user, settings
from .helpdesk import ACTIONS, SEARCH_FIELDS, SUPERVISOR_ACTIONS, ApiError, Helpdesk, supervises
from .layout import current_language

bp = Blueprint("console", __name__)
WHY_MAX = 500


def _signed_in() -> dict[str, Any]:
    record = current_user()
    if record is None:
        raise SignedOut()
    return record


def _helpdesk(record: dict[str, Any]) -> Helpdesk:
    config = settings()
    return Helpdesk(config.identity_url, access_token(record), config.http_timeout,
                    current_language())


def _refused(error: ApiError) -> NoReturn:
    """A refusal of identity as the page's answer (401: signed out; 403/404 as is)."""
    if error.status == 401:
        raise SignedOut() from None
    if error.status in (403, 404):
        abort(error.status, description=error.message)
    abort(502, description=error.message)


@bp.get("/")
def search():
    """The search form; with a query, the users identity finds (by name, email, username
    words, email, company name, status)."""
    record = current_user()
    if record is None:
        return render_template("signed_out.html", user=None)
    query = {name: request.args.get(name, "").strip() for name in SEARCH_FIELDS}
    results = None
    errors: dict[str, list[str]] = {}
    if any(query.values()):
        try:
            results = _helpdesk(record).search(query)
        except ApiError as error:
            if error.status != 400:
                _refused(error)
            errors = error.errors or {"q": [error.message]}
    return render_template("search.html", user=record, query=query, results=results,
                           errors=errors), 400 if errors else 200


@bp.get("/users/<user_id>")
def user_page(user_id: str):
    return _user_page(_signed_in(), user_id)


def _user_page(record: dict[str, Any], user_id: str, *, action: str | None = None,
               errors: dict[str, list[str]] | None = None, why: str = "", status: int = 200):
    helpdesk = _helpdesk(record)
    try:
        person = helpdesk.user(user_id)
        factors = helpdesk.factors(user_id)
    except ApiError as error:
        _refused(error)
    return render_template(
        "user.html", user=record, person=person, factors=factors,
        days_left=days_until_inactive(person, settings().inactivity_days),
        offered=offered_actions(person, factors, _supervises(record)),
        action_labels=action_titles(),
        failed_action=action, errors=errors or {}, why=why), status


def days_until_inactive(person: dict[str, Any], period: int) -> int | None:
    """Days left before an active user ID becomes inactive (None when not active or never
    signed in: identity counts from activation then, which the API does not show)."""
    if person.get("status") != "active" or not person.get("last_login_at"):
        return None
    last = datetime.fromisoformat(person["last_login_at"])
    if last.tzinfo is None:
        last = last.replace(tzinfo=UTC)
    return max(period - (datetime.now(UTC) - last).days, 0)


@bp.post("/users/<user_id>/<action>")
def act(user_id: str, action: str):
    """One action with its reason. Success: back to the user page with what identity
    answered (the tracking number when there is one); a refusal is shown on the page."""
    record = _signed_in()
    if action not in ACTIONS:
        abort(404)
    why = request.form.get("why", "").strip()
    if not why:
        return _user_page(record, user_id, action=action, why=why, status=400,
                          errors={"why": [gettext("Say why: the reason is recorded and "
                                                  "audited.")]})
    if len(why) > WHY_MAX:
        return _user_page(record, user_id, action=action, why=why, status=400,
                          errors={"why": [gettext("At most %(n)d characters.", n=WHY_MAX)]})
    try:
        done = _helpdesk(record).act(user_id, action, why)
    except ApiError as error:
        if error.status in (400, 409):
            errors = error.errors if error.errors else {"action": [error.message]}
            return _user_page(record, user_id, action=action, why=why, errors=errors,
                              status=error.status)
        _refused(error)
    flash(gettext("Done: %(action)s.", action=action_titles()[action]), "done")
    if done.get("tracking_number"):
        flash(done["tracking_number"], "tracking")
    return redirect(url_for("console.user_page", user_id=user_id), 303)


def _supervises(record: dict[str, Any]) -> bool:
    config = settings()
    return supervises(config.permissions_url, access_token(record), str(record.get("sub")),
                      config.http_timeout)


def offered_actions(person: dict[str, Any], factors: dict[str, Any],
                    supervisor: bool = False) -> list[str]:
    """The actions that make sense for the user's state (identity refuses the others with
    409 anyway) and that the person may do: the supervisor's only to a supervisor
    (identity refuses them to an agent with 403 anyway)."""
    offered = []
    if person.get("status") == "inactive":
        offered.append("reactivate")
    if person.get("locked_until"):
        offered.append("unlock")
    if person.get("status") == "active":
        offered.append("username-reminder")
    if factors.get("totp") or factors.get("recovery_codes") or factors.get("passkeys"):
        offered.append("reset-factors")
    if person.get("status") in ("active", "inactive", "locked"):
        offered.append("disable")
    return [a for a in offered if supervisor or a not in SUPERVISOR_ACTIONS]


def action_titles() -> dict[str, str]:
    """Each action's title in the page's language."""
    return {"reactivate": gettext("Reactivate the user ID"),
            "unlock": gettext("Lift the lockout"),
            "username-reminder": gettext("Email the username to the address on file"),
            "reset-factors": gettext("Remove every second factor"),
            "disable": gettext("Disable the user ID (ends their sessions)")}

