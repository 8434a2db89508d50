"""The after-sign-in "add a passkey" page (``/account/add-passkey``) and the gate that
sends a signed-in user there: what the company's MFA policy asks of them now
(:func:`company_policy.standing`).

* :func:`continue_after_sign_in` is what every sign-in calls (the login's ``_signed_in``,
  and the first login when it signs the new user in): it answers where to go, ``next``
  or this page.
* :func:`authorize_gate` is what ``/authorize`` calls: a session whose user must add or
  prove a factor gets no code; the user is sent here (``interaction_required`` with
  ``prompt=none``).

The page offers a passkey and the authenticator app (both set up on
``/account/security``, which returns here through its "Continue" link); "Not now"
(skippable cases only) keeps it away for ``MFA_PROMPT_SNOOZE_DAYS``, stored per user.
"""

from __future__ import annotations

from typing import Any

import flask_babel
from flask import Blueprint, current_app, redirect, request, url_for

from services.common.app import context
from services.common.streams import key
from services.identity import sessions
from services.identity.i18n import prefer
from services.identity.lifecycle.web import csrf_ok, page
from services.identity.models import User
from services.identity.views.security import hardened

from . import company_policy
from .config import FactorsConfig
from .policy import Decision, Factor, Standing

bp = Blueprint("mfa_prompt", __name__)
# How long /account/security remembers where its "Continue" leads (a sign-in's pace).
CONTINUE_SECONDS = 1800


def _cfg() -> FactorsConfig:
    return current_app.extensions["factors"]


def _safe(target: str | None) -> str:
    from services.identity.views.login import _safe_next  # the login imports this module

    return _safe_next(target)


def _decision(user_id: str, amr: list[str], *,
              blocking_only: bool = False) -> tuple[Decision, User | None]:
    with context().db.read() as session:
        user = session.get(User, user_id)
        if user is None:
            return Decision(Standing.NOTHING), None
        decision = company_policy.standing(session, _cfg(), user, amr,
                                           blocking_only=blocking_only)
        session.expunge(user)
    return decision, user


def continue_after_sign_in(user_id: str, amr: list[str], next_url: str) -> str:
    """Where a sign-in of ``user_id`` with ``amr`` goes: ``next_url``, or this page when
    the policy prompts or requires something."""
    decision, _user = _decision(user_id, amr)
    if decision.standing is Standing.NOTHING:
        return next_url
    return url_for("mfa_prompt.prompt", next=next_url)


def authorize_gate(login: sessions.LoginSession, here: str) -> str | None:
    """For ``/authorize``: the page to send the user to when the session may not be used
    yet (a factor to add or prove, the policy binding them), else None."""
    assert login.user_id is not None
    decision, _user = _decision(login.user_id, login.amr or ["pwd"], blocking_only=True)
    return url_for("mfa_prompt.prompt", next=here) if decision.blocking else None


def first_sign_in(user_id: str, next_url: str) -> str | None:
    """The first login's end: when the company's policy requires a factor of the new
    user, sign them in (they just proved the Access Code, PIN and Word and chose their
    password) and answer this page's URL, so that they enrol before they are done; else
    None (they log in as usual, and see the skippable prompt then)."""
    decision, _user = _decision(user_id, ["pwd"], blocking_only=True)
    if not decision.blocking:
        return None
    sessions.start_authenticated_session(user_id, ["pwd"])
    return url_for("mfa_prompt.prompt", next=next_url)


def _continue_key(sid: str) -> str:
    return key(context().settings.redis_namespace, "mfa-continue", sid)


def remember_continue(session: sessions.LoginSession, target: str | None) -> None:
    """``/account/security?next=…``: remember where its "Continue" leads."""
    if target:
        context().redis.set(_continue_key(session.sid), _safe(target), ex=CONTINUE_SECONDS)


def remembered_continue(session: sessions.LoginSession) -> str | None:
    raw = context().redis.get(_continue_key(session.sid))
    return raw.decode() if isinstance(raw, bytes) else raw


def _prompt_page(decision: Decision, next_url: str, status: int = 200, **extra: Any):
    here = url_for("mfa_prompt.prompt", next=next_url)
    binds = (flask_babel.format_date(decision.binds_at, format="long")
             if decision.binds_at is not None and decision.skippable else None)
    return page("factors/prompt.html", status, decision=decision, next=next_url,
                binds_on=binds, security_url=url_for("factors.security", next=here),
                totp_accepted=Factor.TOTP in decision.accepted, **extra)


@bp.route("/account/add-passkey", methods=["GET", "POST"])
@hardened
def prompt():
    """GET: the page (or straight on to ``next`` when nothing is asked any more);
    POST "Not now": snooze, then ``next`` (refused while a factor is required)."""
    next_url = _safe(request.values.get("next"))
    login = sessions.load_session(create=False)
    if login is None or not login.authenticated:
        return redirect(url_for("login.login", next=url_for("mfa_prompt.prompt",
                                                            next=next_url)), 302)
    assert login.user_id is not None
    decision, user = _decision(login.user_id, login.amr or ["pwd"])
    if user is not None:
        prefer(user.preferred_language)
    if request.method == "POST":
        if not csrf_ok():
            return _prompt_page(decision, next_url, 400, form_error=flask_babel.gettext(
                "The form expired. Please try again."))
        if decision.blocking:
            return _prompt_page(decision, next_url, 409)
        if decision.skippable:
            with context().db.transaction() as session:
                company_policy.snooze(session, _cfg(), login.user_id)
        return redirect(next_url, 303)
    if decision.standing is Standing.NOTHING:
        return redirect(next_url, 303)
    if decision.standing is Standing.PROVE:
        # The login's own second step, then back here (and so on to next); where only a
        # passkey counts (phishing_resistant), the step offers the passkey alone.
        sessions.await_second_factor(login, login.user_id)
        only = {} if Factor.TOTP in decision.accepted else {"method": "passkey"}
        return redirect(url_for("login.second_factor",
                                next=url_for("mfa_prompt.prompt", next=next_url), **only), 303)
    return _prompt_page(decision, next_url)
