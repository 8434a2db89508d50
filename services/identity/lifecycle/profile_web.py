"""``/account`` (HTML, login session) and ``/v1/me`` (bearer token: audience identity,
scope ``profile``): the user's own profile, email change and password change.

Changing the email address (where password resets are sent) needs a sign-in within the
last ``RECENT_SIGN_IN`` seconds, so that a session left open on a shared computer, or a
stolen token, cannot take the account over: the page asks for the password again; the
API answers RFC 9470's ``insufficient_user_authentication`` with ``max_age``, and the
client signs the user in again (``max_age=300`` or ``prompt=login`` at /authorize).
"""

from __future__ import annotations

import time
from typing import Any

from flask import Blueprint, redirect, request, url_for
from marshmallow import ValidationError

from services.common.app import context
from services.common.auth import authenticate, current_claims, require_auth
from services.common.errors import Problem
from services.identity import sessions
from services.identity.models import User, UserStatus
from services.identity.passwords import verify_password
from services.identity.ratelimit import TooManyRequests
from services.identity.views.security import hardened

from . import profile
from .i18n import _, prefer
from .schemas import (
    EmailVerifySchema,
    PasswordChangeSchema,
    ProfileChangedSchema,
    ProfileSchema,
    ProfileUpdateSchema,
)
from .web import (
    anonymous,
    body,
    cfg,
    csrf_ok,
    json_response,
    limit_link,
    load,
    page,
    translated,
    user_actor,
)

bp = Blueprint("lifecycle_profile", __name__)
SCOPE = "profile"
RECENT_SIGN_IN = 300  # seconds: how recent a sign-in an email change needs


def _signed_in_recently(auth_time: Any) -> bool:
    return isinstance(auth_time, int | float) and time.time() - auth_time <= RECENT_SIGN_IN


def _asks_email_change(user_id: str, changes: dict[str, Any]) -> bool:
    """Whether ``changes`` ask for a new email address (neither the current one nor the
    one already waiting for confirmation)."""
    if "email" not in changes:
        return False
    with context().db.transaction() as session:
        user = session.get(User, user_id)
        current = profile.view(session, cfg(), user)
    wanted = changes["email"].strip().lower()
    return wanted not in {(current["email"] or "").lower(),
                          (current["pending_email"] or "").lower()}


def _token_user_id() -> str:
    """The token's subject, when it is an active user (not a client's own token)."""
    sub = str(authenticate().get("sub") or "")
    with context().db.read() as session:
        user = session.get(User, sub) if sub else None
        if user is None or user.status != UserStatus.ACTIVE:
            raise Problem(403, "not-a-user-token", "This token does not belong to an active user.")
    return sub


def _profile_json(user_id: str) -> dict[str, Any]:
    with context().db.transaction() as session:
        return ProfileSchema().dump(profile.view(session, cfg(), session.get(User, user_id)))


@bp.get("/v1/me")
@require_auth(SCOPE)
def read_me():
    return json_response(_profile_json(_token_user_id()))


@bp.patch("/v1/me")
@require_auth(SCOPE)
def update_me():
    user_id = _token_user_id()
    changes = load(ProfileUpdateSchema(), body())
    if (_asks_email_change(user_id, changes)
            and not _signed_in_recently(current_claims().get("auth_time"))):
        detail = _("Changing the email address needs a sign-in within the last 5 minutes: "
                   "sign in again, then retry.")
        raise Problem(401, "insufficient-user-authentication", detail, headers={
            "WWW-Authenticate": 'Bearer realm="portico", '
                                'error="insufficient_user_authentication", '
                                'error_description="A more recent sign-in is required", '
                                f'max_age="{RECENT_SIGN_IN}"'}, max_age=RECENT_SIGN_IN)
    with context().db.transaction() as session:
        result = profile.update_profile(session, cfg(), user_id, changes, user_actor(user_id))
    return json_response(ProfileChangedSchema().dump({
        "profile": _profile_json(user_id), "tracking_number": result.tracking_number,
        "email_change_tracking_number": result.email_change_tracking_number}))


@bp.post("/v1/me/password")
@require_auth(SCOPE)
def change_my_password():
    """Ends every login session and refresh token of the user (the caller's access token
    stays valid until it expires)."""
    user_id = _token_user_id()
    data = load(PasswordChangeSchema(), body())
    ctx = context()
    with ctx.db.transaction() as session:
        tracking = profile.change_password(session, cfg(), ctx.redis,
                                           ctx.settings.redis_namespace, user_id,
                                           data["current_password"], data["password"],
                                           user_actor(user_id))
    return json_response({"tracking_number": tracking})


@bp.post("/v1/me/email-verifications")
def verify_email_change():
    """Follow the link sent to the new address (the token is the proof; no login needed)."""
    data = body()
    limit_link("email-link")
    token = load(EmailVerifySchema(), data)["token"]
    with context().db.transaction() as session:
        user = profile.confirm_email_change(session, cfg(), token, anonymous())
        result = {"email": user.email}
    return json_response(result)


# --- pages -------------------------------------------------------------------------------


def _signed_in():
    session = sessions.load_session(create=False)
    if session is None or not session.authenticated:
        return None
    return session


def _account_page(user_id: str, status: int = 200, **extra: Any):
    with context().db.transaction() as session:
        user = session.get(User, user_id)
        prefer(user.preferred_language if user else None)
        current = profile.view(session, cfg(), user)
    values = {"job_title": current["job_title"] or "", "phone": current["phone"] or "",
              "email": current["pending_email"] or current["email"],
              "preferred_language": current["preferred_language"],
              "status_changes": current["notifications"]["status_changes"]}
    return page("lifecycle/account.html", status, profile=current,
                values=extra.pop("values", values), errors=extra.pop("errors", {}), **extra)


@bp.route("/account", methods=["GET", "POST"])
@hardened
def account():
    session = _signed_in()
    if session is None:
        return redirect(url_for("login.login", next=url_for("lifecycle_profile.account")), 302)
    if request.method == "GET":
        return _account_page(session.user_id)
    if not csrf_ok():
        return _account_page(session.user_id, 400,
                             form_error=_("The form expired. Please try again."))
    form = request.form
    changes = {"job_title": form.get("job_title", ""), "phone": form.get("phone", ""),
               "preferred_language": form.get("preferred_language", ""),
               "email": form.get("email", ""),
               "notifications": {"status_changes": form.get("status_changes") == "on"}}
    try:
        data = ProfileUpdateSchema().load(changes)
    except ValidationError as exc:
        values = {k: v for k, v in changes.items() if k != "notifications"}
        values["status_changes"] = changes["notifications"]["status_changes"]
        return _account_page(session.user_id, 422, values=values,
                             errors=translated(exc.messages))
    if (_asks_email_change(session.user_id, data)
            and not _signed_in_recently(session.auth_time)
            and not _password_confirms(session.user_id, form.get("current_password", ""))):
        values = {k: v for k, v in changes.items() if k != "notifications"}
        values["status_changes"] = changes["notifications"]["status_changes"]
        message = (_("The password is not correct.") if form.get("current_password")
                   else _("To change your email address, enter your password again."))
        return _account_page(session.user_id, 401, values=values, reauthenticate=True,
                             errors={"current_password": [message]})
    with context().db.transaction() as db_session:
        result = profile.update_profile(db_session, cfg(), session.user_id, data,
                                        user_actor(session.user_id))
    return _account_page(session.user_id, saved=result)


def _password_confirms(user_id: str, password: str) -> bool:
    if not password:
        return False
    with context().db.read() as session:
        user = session.get(User, user_id)
        return user is not None and verify_password(user.password_hash, password[:1024])


@bp.post("/account/password")
@hardened
def account_password():
    session = _signed_in()
    if session is None:
        return redirect(url_for("login.login", next=url_for("lifecycle_profile.account")), 302)
    if not csrf_ok():
        return _account_page(session.user_id, 400,
                             form_error=_("The form expired. Please try again."))
    form = {k: request.form.get(k, "") for k in ("current_password", "password",
                                                   "password_confirm")}
    ctx = context()
    try:
        data = PasswordChangeSchema().load(form)
        with ctx.db.transaction() as db_session:
            tracking = profile.change_password(
                db_session, cfg(), ctx.redis, ctx.settings.redis_namespace, session.user_id,
                data["current_password"], data["password"], user_actor(session.user_id),
                keep_sid=session.sid)
    except ValidationError as exc:
        return _account_page(session.user_id, 422, password_errors=translated(exc.messages))
    except Problem as problem:
        if problem.status not in (400, 422):
            raise
        return _account_page(session.user_id, problem.status,
                             password_errors=problem.errors or {})
    return _account_page(session.user_id, password_changed=tracking)


@bp.route("/account/email/verify", methods=["GET", "POST"])
@hardened
def account_email_verify():
    """GET shows a button (mail scanners prefetch links); POST confirms."""
    token = request.values.get("token", "")[:100]
    if request.method == "GET":
        return page("lifecycle/email_verify.html", token=token)
    if not csrf_ok():
        return page("lifecycle/email_verify.html", 400, token=token,
                    form_error=_("The form expired. Please try again."))
    try:
        limit_link("email-link")
        with context().db.transaction() as db_session:
            user = profile.confirm_email_change(db_session, cfg(), token, anonymous())
            prefer(user.preferred_language)
            email = user.email
    except TooManyRequests as exc:
        html, _status = page("lifecycle/message.html", 429, title=_("Too many attempts"),
                             message=_("Too many attempts. Try again later."))
        return html, 429, {"Retry-After": str(exc.retry_after)}
    except profile.EmailLinkInvalid:
        return page("lifecycle/message.html", 400, title=_("This link cannot be used"),
                    message=_("The verification link is not valid, was already used or has "
                              "expired."))
    return page("lifecycle/message.html", title=_("Email address confirmed"),
                message=_("Your email address is now %(email)s.", email=email))
