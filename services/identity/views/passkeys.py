"""The passkey ceremonies' JSON endpoints, called by static/passkeys.js from the pages:
options to add a passkey from /account/security (the answer is posted back by that
page's form), and options and assertion for a passwordless sign-in and for a passkey as
the second factor after a password. Every call is bound to the login session (its
cookie) and carries its CSRF token in the ``X-CSRF-Token`` header.

A refused sign-in is one generic 401 whatever the reason (unknown or removed passkey,
replayed challenge, no user verification, a locked, disabled or inactive user); the
reason is in the audit log only. The login page's rate limits count every assertion.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from flask import Response, current_app, request, url_for
from sqlalchemy.orm import Session

from services.common.app import context, request_id
from services.common.errors import Problem
from services.identity import sessions
from services.identity.api.common import NO_STORE, PASSKEYS, Blueprint
from services.identity.audit import Actor
from services.identity.factors import passkey_login, passkeys, second_step
from services.identity.factors.pages import prove_first, proved_enough
from services.identity.factors.schemas import (
    CredentialOptionsSchema,
    PasskeyAssertionSchema,
    SignedInSchema,
)
from services.identity.i18n import _, current_language
from services.identity.lifecycle.web import signed_in_recently
from services.identity.models import User
from services.identity.ratelimit import login_limits

from .login import MESSAGES, SECOND_STEP_SECONDS, _safe_next, start_signed_in

blp = Blueprint("passkeys", __name__, tag=PASSKEYS, gettext=_)
log = logging.getLogger("portico.identity.login")
# The login session's cookie (sessions.COOKIE) names the caller: a security scheme of the
# document (api/__init__.py).
LOGIN_SESSION = [{"loginSession": []}]
CSRF_HEADER = {"in": "header", "name": "X-CSRF-Token", "required": True,
               "schema": {"type": "string"},
               "description": "the login session's CSRF token (the pages' `csrf_token`)"}


def passkey_config() -> passkeys.PasskeyConfig:
    return current_app.extensions["passkeys"]


def login_session() -> sessions.LoginSession:
    """The request's login session, which must have sent its CSRF token (else 403)."""
    session = sessions.load_session(create=False)
    if session is None or not sessions.csrf_valid(session, request.headers.get("X-CSRF-Token")):
        raise Problem(403, "csrf", _("The form expired. Please try again."))
    return session


def options_response(options_json: str) -> Response:
    """The options py_webauthn made, as they are (already JSON), never stored by a cache."""
    return Response(options_json, mimetype="application/json", headers=NO_STORE)


def _refused() -> Problem:
    return Problem(401, "sign-in-refused", MESSAGES[current_language()]["failed"])


def _actor(user_id: str | None = None) -> Actor:
    return Actor("user" if user_id else "anonymous", user_id, request.remote_addr or "-",
                 request_id())


def _signed_in(user_id: str, amr: list[str], next_url: str | None) -> Response:
    target = start_signed_in(user_id, amr, _safe_next(next_url))
    return Response(json.dumps({"redirect": target}),
                    mimetype="application/json", headers=NO_STORE)


def _sign_in_options(session: sessions.LoginSession, user_id: str | None = None) -> Response:
    """A sign-in's options (any passkey, or ``user_id``'s), refused while the login's rate
    limits are reached: each issues a challenge."""
    login_limits().check(request.remote_addr or "-")
    with context().db.transaction() as db_session:
        user = db_session.get(User, user_id) if user_id else None
        return options_response(passkeys.authentication_options(
            db_session, passkey_config(), session.sid, user))


def _counted_sign_in(attempt: Callable[[Session], tuple[str, list[str]] | None]) -> tuple[
        str, list[str]]:
    """Run ``attempt`` (→ the user id and amr, or None when refused) in a transaction,
    counted by the login's rate limits as a password is; a refusal is the generic 401."""
    limits, address = login_limits(), request.remote_addr or "-"
    limits.check(address)
    with context().db.transaction() as db_session:
        signed_in = attempt(db_session)
    limits.note(address, succeeded=signed_in is not None)
    if signed_in is None:
        log.info("passkey sign-in refused")
        raise _refused()
    return signed_in


def _pending_user(session: sessions.LoginSession) -> str:
    user_id = sessions.pending_user(session, SECOND_STEP_SECONDS)
    if user_id is None:
        raise Problem(401, "no-pending-sign-in",
                      _("Sign in with your password first."), login=url_for("login.login"))
    return user_id


@blp.post("/account/security/passkeys/options")
@blp.response(200, CredentialOptionsSchema, description="Options for "
              "`navigator.credentials.create` (a discoverable passkey, user verification "
              "required; the user's passkeys excluded)")
@blp.problems(401, 403)
@blp.doc(parameters=[CSRF_HEADER], security=LOGIN_SESSION)
def registration_options() -> Any:
    """Start adding a passkey: signed in within the last five minutes (else 403, sign in
    again), as every change of the sign-in factors."""
    session = login_session()
    if not session.authenticated or session.user_id is None:
        raise Problem(401, "not-signed-in", _("Sign in first."), login=url_for("login.login"))
    if not signed_in_recently(session.auth_time):
        raise Problem(403, "recent-sign-in-required", _(
            "Adding a passkey needs a sign-in within the last 5 minutes: sign in again."),
            login=url_for("login.login", next=url_for("factors.security")))
    if not proved_enough(session):
        raise Problem(403, "second-factor-required", _(
            "Adding a passkey needs the second step first: use your app's code or a "
            "passkey you have."), login=prove_first(session))
    with context().db.transaction() as db_session:
        options = passkeys.registration_options(db_session, passkey_config(),
                                                db_session.get(User, session.user_id),
                                                session.sid)
    return options_response(options)


@blp.post("/login/passkey/options")
@blp.response(200, CredentialOptionsSchema, description="Options for "
              "`navigator.credentials.get` (any discoverable passkey, user verification "
              "required)")
@blp.problems(403, 429)
@blp.doc(parameters=[CSRF_HEADER], security=LOGIN_SESSION)
def passwordless_options() -> Any:
    """Start a sign-in with a passkey and no password (login session cookie)."""
    return _sign_in_options(login_session())


@blp.post("/login/passkey")
@blp.arguments(PasskeyAssertionSchema)
@blp.response(200, SignedInSchema, description="Signed in: go to `redirect`")
@blp.problems(400, 401, 403, 422, 429)
@blp.doc(parameters=[CSRF_HEADER], security=LOGIN_SESSION)
def passwordless_sign_in(body: dict[str, Any]) -> Any:
    """Sign in with the passkey's assertion to this session's challenge; 401 (one answer
    for every reason) when refused."""
    session = login_session()

    def attempt(db_session: Session) -> tuple[str, list[str]] | None:
        result = passkey_login.sign_in(db_session, current_app.extensions["factors"],
                                       passkey_config(), session.sid, body["credential"],
                                       _actor())
        return (result.user.id, result.amr) if result.user and result.amr else None

    user_id, amr = _counted_sign_in(attempt)
    return _signed_in(user_id, amr, body.get("next"))


@blp.post("/login/second-factor/passkey/options")
@blp.response(200, CredentialOptionsSchema, description="Options for "
              "`navigator.credentials.get` (the user's passkeys)")
@blp.problems(401, 403, 404, 429)
@blp.doc(parameters=[CSRF_HEADER], security=LOGIN_SESSION)
def second_factor_options() -> Any:
    """Start the second step with one of the user's passkeys, within five minutes of the
    right password (401 otherwise; 404: the user has no passkey)."""
    session = login_session()
    return _sign_in_options(session, _pending_user(session))


@blp.post("/login/second-factor/passkey")
@blp.arguments(PasskeyAssertionSchema)
@blp.response(200, SignedInSchema, description="Signed in: go to `redirect`")
@blp.problems(400, 401, 403, 422, 429)
@blp.doc(parameters=[CSRF_HEADER], security=LOGIN_SESSION)
def second_factor_sign_in(body: dict[str, Any]) -> Any:
    """Finish the second step with the passkey's assertion (amr pwd, hwk, mfa)."""
    session = login_session()
    user_id = _pending_user(session)

    def attempt(db_session: Session) -> tuple[str, list[str]] | None:
        proof = second_step.prove_with_passkey(
            db_session, current_app.extensions["factors"], passkey_config(),
            db_session.get(User, user_id), session.sid, body["credential"], _actor(user_id))
        return (user_id, proof.amr) if proof else None

    _, amr = _counted_sign_in(attempt)
    sessions.await_second_factor(session, None)
    return _signed_in(user_id, amr, body.get("next"))
