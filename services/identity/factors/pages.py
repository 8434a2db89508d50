"""``/account/security`` (HTML, login session): set up an authenticator app (QR code as
inline SVG, and the secret to type), confirm it with a first code; add passkeys (the
browser's answer to ``navigator.credentials.create``, made by static/passkeys.js with
options from ``views/passkeys.py``, is posted by the page's form), rename and remove
them; see the recovery codes once (and download them as text), make new ones, remove the
app."""

from __future__ import annotations

from functools import wraps
from typing import Any
from urllib.parse import quote

import segno
from flask import Blueprint, current_app, redirect, request, url_for
from markupsafe import Markup

from services.common.app import context
from services.common.domain_errors import Conflict, Invalid, NotFound
from services.identity import sessions
from services.identity.i18n import _, prefer
from services.identity.lifecycle.web import csrf_ok, page, signed_in_recently, user_actor
from services.identity.models import User
from services.identity.views.security import scripted

from . import held, passkeys, recovery_codes, second_step, totp
from .config import FactorsConfig
from .prompt_pages import remember_continue, remembered_continue

bp = Blueprint("factors", __name__)


def cfg() -> FactorsConfig:
    return current_app.extensions["factors"]


def _qr_svg(uri: str) -> Markup:
    # segno draws the SVG from the URI's bits (its title escaped): no text of the user
    # reaches the markup unescaped.
    svg = segno.make(uri, error="m").svg_inline(scale=5, title=_("QR code"))
    return Markup(svg)  # noqa: S704


def _codes_download(codes: list[str]) -> str:
    return "data:text/plain;charset=utf-8," + quote("\n".join(codes) + "\n")


def _security_page(user_id: str, status: int = 200, **extra: Any):
    with context().db.transaction() as session:
        user = session.get(User, user_id)
        prefer(user.preferred_language if user else None)
        enrolment = totp.pending_enrolment(session, cfg(), user)
        values = {"totp_on": totp.confirmed(session, user_id),
                  "passkeys": passkeys.list_for(session, user),
                  "has_factor": held.any_factor(session, user_id),
                  "remaining": recovery_codes.remaining(session, user_id)}
    if enrolment is not None:
        values |= {"secret": enrolment.secret, "qr_svg": _qr_svg(enrolment.provisioning_uri)}
    elsewhere = passkeys.usable_origin(_passkey_config())
    values["passkey_page"] = elsewhere + url_for("factors.security") if elsewhere else None
    codes = extra.get("codes")
    if codes:
        extra["codes_download"] = _codes_download(codes)
    login = _signed_in()
    values["continue_to"] = remembered_continue(login) if login is not None else None
    return page("factors/security.html", status, errors=extra.pop("errors", {}),
                **values, **extra)


def _signed_in() -> sessions.LoginSession | None:
    session = sessions.load_session(create=False)
    return session if session is not None and session.authenticated else None


def proved_enough(session: sessions.LoginSession) -> bool:
    """Whether ``session`` may change the user's factors: it proved a second factor, or
    the user holds none. A password alone must not add, remove or replace the factors
    of a user who has one (someone who learnt the password would otherwise put their own
    passkey or app in place, or take the user's away)."""
    if "mfa" in (session.amr or []):
        return True
    with context().db.read() as db_session:
        return not held.any_factor(db_session, session.user_id)


def prove_first(session: sessions.LoginSession) -> str:
    """Where a session that has not :func:`proved_enough` goes: the login's second step,
    then back to the page."""
    sessions.await_second_factor(session, session.user_id)
    return url_for("login.second_factor", next=url_for("factors.security"))


def _guarded(handler):
    """A form of the page: signed in recently (``lifecycle/web.py: RECENT_SIGN_IN``;
    else to the login, so that a session left open cannot change the factors), having
    proved a factor the user holds (:func:`proved_enough`; else to the second step) and
    with a valid CSRF token."""
    @wraps(handler)
    def view(**kwargs: Any):
        session = _signed_in()
        if session is None or not signed_in_recently(session.auth_time):
            return redirect(url_for("login.login", next=url_for("factors.security")), 303)
        if not csrf_ok():
            return _security_page(session.user_id, 400,
                                  form_error=_("The form expired. Please try again."))
        if not proved_enough(session):
            return redirect(prove_first(session), 303)
        return handler(session.user_id, **kwargs)
    return scripted(view)


@bp.get("/account/security")
@scripted
def security():
    session = _signed_in()
    if session is None:
        return redirect(url_for("login.login", next=url_for("factors.security")), 302)
    remember_continue(session, request.args.get("next"))
    return _security_page(session.user_id)


def _as_user(use_case, user_id: str, *args: Any, config: Any = None) -> Any:
    """``use_case(session, config, user, *args)`` in a transaction (config: the
    factors')."""
    with context().db.transaction() as session:
        return use_case(session, config or cfg(), session.get(User, user_id), *args)


@bp.post("/account/security/totp", endpoint="totp_begin")
@_guarded
def totp_begin(user_id: str):
    _as_user(totp.begin_enrolment, user_id)
    return redirect(url_for("factors.security"), 303)


@bp.post("/account/security/totp/confirm", endpoint="totp_confirm")
@_guarded
def totp_confirm(user_id: str):
    try:
        codes = _as_user(totp.confirm, user_id, request.form.get("code", "")[:20],
                         user_actor(user_id))
    except Invalid:
        return _security_page(user_id, 400, errors={"code": [_(
            "The code is not correct. Type the code your app shows now.")]})
    # A code from the new app, in this signed-in session, proves it: the session now
    # counts as two factors (docs/authentication.md, "Company MFA policy").
    login = _signed_in()
    if login is not None:
        sessions.add_methods(login, second_step.AMR_WITH_CODE)
    return _security_page(user_id, codes=codes, notice=_("Your authenticator app is set up."))


@bp.post("/account/security/recovery-codes", endpoint="recovery_codes")
@_guarded
def regenerate_recovery_codes(user_id: str):
    # The page is drawn after this read ends: drawn inside it, its own transaction waited
    # on this one's (a 503 on SQLite).
    with context().db.read() as session:
        has_factor = held.any_factor(session, user_id)
    if not has_factor:
        return _security_page(user_id, 409)
    codes = _as_user(recovery_codes.generate, user_id, user_actor(user_id))
    return _security_page(user_id, codes=codes)


@bp.post("/account/security/totp/remove", endpoint="totp_remove")
@_guarded
def totp_remove(user_id: str):
    with context().db.transaction() as session:
        if session.get(totp.TotpFactor, user_id) is not None:
            totp.remove(session, cfg(), session.get(User, user_id), user_actor(user_id))
    return redirect(url_for("factors.security"), 303)


def _passkey_config() -> passkeys.PasskeyConfig:
    return current_app.extensions["passkeys"]


@bp.post("/account/security/passkeys", endpoint="passkey_add")
@_guarded
def passkey_add(user_id: str):
    """The browser's answer to the registration options, with the name the user gave; the
    first factor brings the recovery codes, shown once."""
    session = sessions.load_session(create=False)
    assert session is not None
    name = request.form.get("name", "")[:200]
    try:
        with context().db.transaction() as db_session:
            user = db_session.get(User, user_id)
            added = passkeys.register(db_session, _passkey_config(), user, session.sid,
                                      request.form.get("credential", "")[:65536], name,
                                      user_actor(user_id))
            method = passkeys.method(added)
            codes = recovery_codes.issue_if_first(db_session, cfg(), user, user_actor(user_id))
    except passkeys.PasskeyRefused:
        return _security_page(user_id, 400, errors={"credential": [_(
            "The passkey could not be added. Try again.")]})
    except Invalid:
        return _security_page(user_id, 400, errors={"name": [_(
            "Give the passkey a name of 1 to 100 characters.")]})
    except Conflict:
        return _security_page(user_id, 409, form_error=_(
            "This passkey is already registered."))
    # Made with user verification in this signed-in session, the passkey proves itself
    # here as an app's first code does (docs/authentication.md, "Company MFA policy").
    sessions.add_methods(session, [method, "mfa"])
    return _security_page(user_id, codes=codes, notice=_("Your passkey is added."))


@bp.post("/account/security/passkeys/<passkey_id>/rename", endpoint="passkey_rename")
@_guarded
def passkey_rename(user_id: str, passkey_id: str):
    try:
        _as_user(passkeys.rename, user_id, passkey_id, request.form.get("name", "")[:200],
                 user_actor(user_id), config=_passkey_config())
    except NotFound:
        return _security_page(user_id, 404)
    except Invalid:
        return _security_page(user_id, 400, form_error=_(
            "Give the passkey a name of 1 to 100 characters."))
    return redirect(url_for("factors.security"), 303)


@bp.post("/account/security/passkeys/<passkey_id>/remove", endpoint="passkey_remove")
@_guarded
def passkey_remove(user_id: str, passkey_id: str):
    """Remove a passkey; with the last factor go the recovery codes."""
    try:
        _as_user(passkeys.remove, user_id, passkey_id, user_actor(user_id),
                 config=_passkey_config())
    except NotFound:
        return _security_page(user_id, 404)
    return redirect(url_for("factors.security"), 303)
