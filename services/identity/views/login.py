"""Login, logout (RP-initiated) and the user's consents page."""

from __future__ import annotations

import logging
from urllib.parse import urlencode, urlparse

from flask import Blueprint, redirect, render_template, request, url_for
from sqlalchemy import delete, select

from services.common.app import context, request_id
from services.common.fields import whole_number
from services.common.streams import key

from .. import sessions
from ..audit import Actor
from ..factors import held, second_step
from ..factors.pages import cfg as factors_config
from ..factors.prompt_pages import continue_after_sign_in
from ..i18n import current_language
from ..lifecycle.inactive_page import inactive_page
from ..lifecycle.web import cfg as lifecycle_config
from ..login_outcome import LoginOutcome
from ..models import User
from ..oidc.models import Consent, OAuthClient
from ..oidc.server import current_server
from ..oidc.tokens import TokenRejected, decode_own_token
from ..ratelimit import login_limits
from ..service import authenticate
from .security import hardened, scripted

bp = Blueprint("login", __name__)
log = logging.getLogger("portico.identity.login")
# How long after the right password the second step may come.
SECOND_STEP_SECONDS = 300

MESSAGES = {
    "en": {"failed": "The username or password is not correct, or the account cannot be used. "
                     "If you cannot log in, contact the help desk.",
           "expired": "The form expired. Please try again.",
           "code": "The code is not correct, or it was used already. Try the code your app "
                   "shows now, or a recovery code."},
    "es": {"failed": "El usuario o la contraseña no son correctos, o la cuenta no se puede usar. "
                     "Si no puede entrar, contacte con la mesa de ayuda.",
           "expired": "El formulario caducó. Inténtelo de nuevo.",
           "code": "El código no es correcto o ya se usó. Pruebe el código que su aplicación "
                   "muestra ahora, o un código de recuperación."},
}


def _safe_next(target: str | None) -> str:
    """Only local paths: never an open redirect.

    Browsers read a backslash as a slash and drop tabs and newlines (the WHATWG URL
    parser), so ``/\\evil.example`` or ``/<tab>/evil.example``, a path to ``urlparse``,
    leads off-site: such characters are refused outright."""
    if not target or not target.isprintable() or "\\" in target:
        return url_for("login.account_consents")
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return url_for("login.account_consents")
    return target


def _asked_locale() -> str | None:
    """The ``ui_locales`` the relying party (or the form) asked for, if any."""
    nxt = request.values.get("next", "")
    query = dict(p.split("=", 1) for p in urlparse(nxt).query.split("&") if "=" in p)
    return query.get("ui_locales") or request.values.get("ui_locales") or None


def _lang() -> str:
    return current_language()


def _login_hint() -> str:
    nxt = request.values.get("next", "")
    from urllib.parse import parse_qs

    return (parse_qs(urlparse(nxt).query).get("login_hint") or [""])[0][:150]


@bp.route("/login", methods=["GET", "POST"])
@scripted
def login():
    session = sessions.load_session(create=True)
    assert session is not None
    lang = _lang()
    next_url = _safe_next(request.values.get("next"))
    if request.method == "GET":
        # The asked locale travels with the POST so a refusal page (e.g. inactive) keeps it.
        returning = _returning(session, _login_hint())
        return render_template("login.html", csrf_token=session.csrf, next=next_url,
                               username=returning or _login_hint(), returning=returning,
                               error=None, lang=lang, ui_locales=_asked_locale())
    if not sessions.csrf_valid(session, request.form.get("csrf_token")):
        return render_template("login.html", csrf_token=session.csrf, next=next_url,
                               username="", error=MESSAGES[lang]["expired"], lang=lang), 400
    limits = login_limits()
    address = request.remote_addr or "-"
    limits.check(address)
    username = request.form.get("username", "")[:150]
    password = request.form.get("password", "")[:1024]
    with context().db.transaction() as db_session:
        result = authenticate(db_session, username, password, lifecycle_config())
    limits.note(address, succeeded=result.outcome in (LoginOutcome.SIGNED_IN,
                                                      LoginOutcome.NEEDS_SECOND_FACTOR))
    if result.outcome is LoginOutcome.SIGNED_IN:
        assert result.user is not None
        return _signed_in(result.user.id, ["pwd"], next_url)
    if result.outcome is LoginOutcome.NEEDS_SECOND_FACTOR:
        assert result.user is not None
        sessions.await_second_factor(session, result.user.id)
        return redirect(url_for("login.second_factor", next=next_url), 303)
    log.info("login refused", extra={"reason": result.outcome.value})
    if result.outcome is LoginOutcome.INACTIVE:
        # The right password: this user may be told why, and whom to call.
        assert result.user is not None
        return inactive_page(result.user.preferred_language, result.inactivity_days)
    # Unknown user, wrong password, locked or disabled: one answer for all.
    return render_template("login.html", csrf_token=session.csrf, next=next_url,
                           username=username, error=MESSAGES[lang]["failed"], lang=lang), 401


def _returning(session: sessions.LoginSession, hint: str) -> str | None:
    """The username of the signed-in user this page asks to prove it again (a client
    asked for a new sign-in: ``prompt=login``, ``max_age``), unless the client hinted at
    someone else."""
    if not session.authenticated:
        return None
    with context().db.read() as db_session:
        user = db_session.get(User, session.user_id)
        if user is None or (hint and User.key_for(hint) != user.username_key):
            return None
        return user.username


def start_signed_in(user_id: str, amr: list[str], next_url: str) -> str:
    """Start the signed-in session (a new id), fresh for /authorize, and answer where to
    go: ``next_url``, or first the page the company's MFA policy asks for. Every way of
    signing in (password, second factor, passkey) ends here. The fresh-login mark names
    ``next_url``, so that only that authorization counts this sign-in as the fresh one it
    asked for (``views/oauth.py: _fresh_login``)."""
    fresh = sessions.start_authenticated_session(user_id, amr)
    ctx = context()
    ctx.redis.set(key(ctx.settings.redis_namespace, "fresh-login", fresh.sid), next_url, ex=300)
    return continue_after_sign_in(user_id, amr, next_url)


def _signed_in(user_id: str, amr: list[str], next_url: str):
    """Start the signed-in session and continue to ``next_url`` (or the policy's page)."""
    return redirect(start_signed_in(user_id, amr, next_url), 303)


@bp.route("/login/second-factor", methods=["GET", "POST"])
@scripted
def second_factor():
    """The login's second step: a code from the authenticator app or a recovery code,
    within :data:`SECOND_STEP_SECONDS` of the right password."""
    session = sessions.load_session(create=True)
    assert session is not None
    lang = _lang()
    next_url = _safe_next(request.values.get("next"))
    user_id = sessions.pending_user(session, SECOND_STEP_SECONDS)
    if user_id is None:
        return redirect(url_for("login.login", next=next_url), 303)
    if request.method == "GET":
        return _second_factor_page(session, user_id, next_url, None)
    if not sessions.csrf_valid(session, request.form.get("csrf_token")):
        return _second_factor_page(session, user_id, next_url, MESSAGES[lang]["expired"]), 400
    limits = login_limits()
    address = request.remote_addr or "-"
    limits.check(address)
    code = request.form.get("code", "")[:40]
    with context().db.transaction() as db_session:
        user = db_session.get(User, user_id)
        proof = second_step.prove(db_session, factors_config(), user, code,
                                  Actor("user", user_id, address, request_id()))
    limits.note(address, succeeded=proof is not None)
    if proof is None:
        log.info("second factor refused")
        return _second_factor_page(session, user_id, next_url, MESSAGES[lang]["code"]), 401
    sessions.await_second_factor(session, None)
    signed_in = _signed_in(user_id, proof.amr, next_url)
    if proof.recovery_codes_left is None:
        return signed_in
    # A recovery code is worth telling about: how many are left, before going on.
    return render_template("recovery_code_used.html", next=next_url,
                           remaining=proof.recovery_codes_left, lang=lang)


def _second_factor_page(session: sessions.LoginSession, user_id: str, next_url: str,
                        error: str | None) -> str:
    """The second step's page; "Use a passkey" is offered when the user has one, and the
    code field asks for what the user has (an app's code, or only a recovery code). A
    step asked for the phishing-resistant level (``method=passkey``, which
    ``/authorize`` sets) offers the passkey alone: no code reaches that level."""
    with context().db.read() as db_session:
        has_passkey = held.has_passkey(db_session, user_id)
        has_totp = held.has_totp(db_session, user_id)
    passkey_only = has_passkey and request.values.get("method") == "passkey"
    return render_template("second_factor.html", csrf_token=session.csrf, next=next_url,
                           error=error, lang=_lang(), has_passkey=has_passkey,
                           has_totp=has_totp, passkey_only=passkey_only)


@bp.route("/logout", methods=["GET", "POST"])
@hardened
def logout():
    """RP-initiated logout: ends the login session, at once when a valid ``id_token_hint``
    names the signed-in user, else once the user confirms; then the user is sent to a
    registered ``post_logout_redirect_uri`` (``state`` echoed)."""
    params = request.values
    provider = current_server().provider
    hint_client_id = hint_sub = None
    hint = params.get("id_token_hint")
    if hint:
        try:
            claims = decode_own_token(provider.keyring, hint, provider.settings.issuer,
                                      check_exp=False)
            aud = claims.get("aud")
            hint_client_id = aud[0] if isinstance(aud, list) and aud else aud
            hint_sub = claims.get("sub")
        except TokenRejected:
            return render_template("error.html", message="The id_token_hint is not valid."), 400
    client_id = params.get("client_id") or hint_client_id
    if hint_client_id and client_id != hint_client_id:
        return render_template("error.html", message="client_id does not match the hint."), 400
    target = params.get("post_logout_redirect_uri")
    if target:
        with provider.db.read() as db_session:
            client = db_session.get(OAuthClient, client_id) if client_id else None
            allowed = list(client.post_logout_redirect_uris or []) if client else []
        if target not in allowed:
            return render_template("error.html",
                                   message="The post-logout redirect URI is not registered."), 400
    login_session = sessions.load_session(create=True)
    # A hint vouches for the request only if it names the user signed in here: anyone can
    # get an ID token of their own, and a link carrying it must not sign someone else out
    # unasked (RP-Initiated Logout 1.0 §2: otherwise the OP asks the user).
    hinted_user_signed_in = hint is not None and (
        login_session is None or not login_session.authenticated
        or login_session.user_id == hint_sub)
    confirmed = hinted_user_signed_in or (request.method == "POST" and sessions.csrf_valid(
        login_session, request.form.get("csrf_token")))
    if not confirmed:
        # The form carries the client the hint named, so the confirmed logout may still
        # return to that client's registered URI.
        fields = {"client_id": client_id, "post_logout_redirect_uri": target,
                  "state": params.get("state")}
        return render_template("logout.html", csrf_token=login_session.csrf if login_session
                               else "", params=fields, lang=_lang())
    sessions.end_session_telling_clients(login_session)
    if target:
        state = params.get("state")
        sep = "&" if "?" in target else "?"
        return redirect(target + (sep + urlencode({"state": state}) if state else ""), 303)
    return render_template("logged_out.html", lang=_lang())


@bp.route("/account/consents", methods=["GET", "POST"])
@hardened
def account_consents():
    """The user's remembered consents; each can be withdrawn."""
    session = sessions.load_session(create=False)
    if session is None or not session.authenticated:
        return redirect(url_for("login.login", next=url_for("login.account_consents")), 302)
    db = context().db
    if request.method == "POST":
        if not sessions.csrf_valid(session, request.form.get("csrf_token")):
            return render_template("error.html", message="The form expired."), 400
        consent_id = whole_number(request.form.get("consent_id"))
        if consent_id is not None:
            with db.transaction() as db_session:
                db_session.execute(delete(Consent).where(
                    Consent.user_id == session.user_id, Consent.id == consent_id))
        return redirect(url_for("login.account_consents"), 303)
    with db.read() as db_session:
        rows = db_session.execute(
            select(Consent.id, Consent.client_id, Consent.scope, Consent.granted_at,
                   OAuthClient.name).join(OAuthClient, OAuthClient.client_id == Consent.client_id)
            .where(Consent.user_id == session.user_id).order_by(Consent.granted_at)).all()
    return render_template("consents.html", consents=rows, csrf_token=session.csrf)
