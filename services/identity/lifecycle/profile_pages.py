"""``/account`` (HTML, login session): the user's own profile, email change and password
change (the JSON API: :mod:`.profile_api`).

A new email address needs a sign-in within :data:`.web.RECENT_SIGN_IN` seconds: the page
asks for the password again.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, redirect, request, url_for
from marshmallow import ValidationError

from services.common.app import context
from services.common.domain_errors import Invalid
from services.identity import sessions
from services.identity.i18n import _, prefer
from services.identity.models import User
from services.identity.passwords import verify_password
from services.identity.ratelimit import TooManyRequests
from services.identity.views.security import hardened

from . import profile
from .schemas import PasswordChangeSchema, ProfileUpdateSchema
from .web import (
    anonymous,
    asks_email_change,
    cfg,
    csrf_ok,
    limit_link,
    page,
    signed_in_recently,
    too_many_page,
    translated,
    user_actor,
)

bp = Blueprint("lifecycle_profile", __name__)


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
    if (asks_email_change(session.user_id, data)
            and not signed_in_recently(session.auth_time)
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
    except profile.WrongCurrentPassword as refused:
        return _account_page(session.user_id, 400, password_errors=refused.errors or {})
    except Invalid as refused:
        return _account_page(session.user_id, 422, password_errors=refused.errors or {})
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
        return too_many_page(exc)
    except profile.EmailLinkInvalid:
        return page("lifecycle/message.html", 400, title=_("This link cannot be used"),
                    message=_("The verification link is not valid, was already used or has "
                              "expired."))
    return page("lifecycle/message.html", title=_("Email address confirmed"),
                message=_("Your email address is now %(email)s.", email=email))
