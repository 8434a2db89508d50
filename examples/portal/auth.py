"""Signing in through Portico (authorization code + PKCE S256), the server-side session
that keeps the user's tokens, refreshing them, CSRF, and RP-initiated logout."""

from __future__ import annotations

import hmac
import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask_babel import gettext

from . import step_up
from .store import CardStore, SessionStore

log = logging.getLogger("portico.portal")
bp = Blueprint("auth", __name__)
REFRESH_MARGIN = 30  # seconds before expiry at which a token is refreshed
# Where sign-in and sign-out land: the app's config ``HOME_ENDPOINT`` (the help-desk
# console registers this same blueprint), else the portal's home page.
HOME_ENDPOINT = "portal.home"
REGISTER_COMMAND = "python -m examples.portal.register"


class SignedOut(Exception):
    """The session is gone or its tokens can no longer be refreshed."""


def init_oauth(app: Flask, settings, backend) -> None:
    """Register Portico as the ``portico`` OAuth client (if the portal has credentials)."""
    credentials = settings.credentials()
    # authlib keeps the state, nonce and PKCE verifier in this cache, not in the cookie.
    oauth = OAuth(app, cache=backend)
    if credentials is not None:
        client_id, client_secret = credentials
        oauth.register(
            "portico", client_id=client_id, client_secret=client_secret,
            server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.scope, "code_challenge_method": "S256",
                           "timeout": settings.http_timeout})
    app.extensions["portal.oauth"] = oauth
    app.extensions["portal.sessions"] = SessionStore(backend, settings.session_ttl)
    app.extensions["portal.cards"] = CardStore(backend)
    app.extensions["portal.settings"] = settings


def _settings():
    return current_app.extensions["portal.settings"]


def _home() -> str:
    return current_app.config.get("HOME_ENDPOINT", HOME_ENDPOINT)


def _sessions() -> SessionStore:
    return current_app.extensions["portal.sessions"]


def _client():
    client = current_app.extensions["portal.oauth"].create_client("portico")
    if client is None:
        abort(make_response(render_template("error.html", title="Not registered", message=(
            "This app has no client credentials yet: make run registers it on first start "
            f"(by hand: `{current_app.config.get('REGISTER_COMMAND', REGISTER_COMMAND)}`).")),
            503))
    return client


# CSRF -------------------------------------------------------------------------------
def csrf_token() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(32)
    return session["csrf"]


def check_csrf() -> None:
    """Every POST carries the session's ``csrf_token`` (a 400 page otherwise)."""
    if request.method != "POST":
        return
    sent = request.form.get("csrf_token", "")
    expected = session.get("csrf", "")
    if not expected or not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(400, description=gettext("The form has expired; reload the page and try "
                                        "again."))


# The signed-in user -----------------------------------------------------------------
def current_user() -> dict[str, Any] | None:
    """The session record (``sub``, ``name``, ``company_id``, tokens), or None."""
    sid = session.get("sid")
    if not sid:
        return None
    return _sessions().load(sid)


def access_token(record: dict[str, Any]) -> str:
    """A live access token of the signed-in user, refreshed (rotating) when about to expire."""
    if record["expires_at"] - REFRESH_MARGIN > time.time():
        return record["access_token"]
    sid = session["sid"]
    store = _sessions()
    with store.lock(sid):
        fresh = store.load(sid)  # another request may have refreshed it meanwhile
        if fresh is None:
            raise SignedOut()
        if fresh["expires_at"] - REFRESH_MARGIN > time.time():
            return fresh["access_token"]
        if not fresh.get("refresh_token"):
            store.delete(sid)
            raise SignedOut()
        token = _refresh(fresh["refresh_token"])
        if token is None:
            store.delete(sid)
            raise SignedOut()
        fresh.update(_token_fields(token))
        store.save(sid, fresh)
        return fresh["access_token"]


def _refresh(refresh_token: str) -> dict[str, Any] | None:
    client = _client()
    metadata = client.load_server_metadata()
    try:
        response = requests.post(
            metadata["token_endpoint"], timeout=_settings().http_timeout,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, client.client_secret))
    except requests.RequestException:
        return None
    if response.status_code != 200:
        log.info("refresh refused", extra={"status": response.status_code})
        return None
    return response.json()


def _token_fields(token: dict[str, Any]) -> dict[str, Any]:
    fields = {"access_token": token["access_token"],
              "expires_at": token.get("expires_at") or int(time.time()) + int(token.get(
                  "expires_in", 300))}
    if token.get("refresh_token"):
        fields["refresh_token"] = token["refresh_token"]
    if token.get("id_token"):
        fields["id_token"] = token["id_token"]
    return fields


# Views ------------------------------------------------------------------------------
@bp.get("/login")
def login():
    """Off to Portico's authorization endpoint (state, nonce and PKCE S256 included)."""
    extra = {}
    if request.args.get("lang") in ("en", "es"):
        extra["ui_locales"] = request.args["lang"]
    return _client().authorize_redirect(_settings().redirect_uri, **extra)


def step_up_redirect(level: str):
    """Off to Portico's authorization endpoint asking for the authentication level
    ``level`` (``acr_values``): Portico asks for the second factor if the session has not
    reached it, then comes back to the callback."""
    return _client().authorize_redirect(_settings().redirect_uri, acr_values=level)


@bp.get("/callback")
def callback():
    """Exchange the code (ID token verified by authlib against the JWKS), keep the tokens
    server-side under a fresh session id, and go home, or finish the action that asked
    for a step-up (:mod:`step_up`)."""
    client = _client()
    try:
        token = client.authorize_access_token()
        profile = client.userinfo(token=token)
    except (AuthlibBaseError, requests.RequestException, ValueError) as error:
        description = getattr(error, "description", None) or getattr(error, "error", None)
        log.info("sign-in failed", extra={"error": type(error).__name__})
        return render_template("error.html", title=gettext("Sign-in failed"),
                               message=gettext("Portico did not sign you in."),
                               detail=description), 400
    claims = token.get("userinfo") or {}
    record = {"sub": claims.get("sub") or profile.get("sub"),
              "name": profile.get("name") or profile.get("preferred_username") or "",
              "email": profile.get("email"), "company_id": profile.get("company_id"),
              "language": profile.get("locale")}
    record.update(_token_fields(token))
    old = session.get("sid")
    pending = None
    if old:
        pending = step_up.carried_over(_sessions().load(old), record["sub"])
        _sessions().delete(old)
    session.clear()  # a new session id at sign-in (no session fixation)
    sid = secrets.token_urlsafe(32)
    _sessions().save(sid, record)
    session["sid"] = sid
    if pending is not None:
        return step_up.resume(pending, record)
    return redirect(url_for(_home()), 303)


@bp.post("/logout")
def logout():
    """Forget the tokens here, revoke the refresh token, then log out at Portico too."""
    sid = session.pop("sid", None)
    record = _sessions().load(sid) if sid else None
    if sid:
        _sessions().delete(sid)
    session.clear()
    client = current_app.extensions["portal.oauth"].create_client("portico")
    if record is None or client is None:
        return redirect(url_for(_home()), 303)
    metadata = client.load_server_metadata()
    if record.get("refresh_token") and metadata.get("revocation_endpoint"):
        try:
            requests.post(metadata["revocation_endpoint"], timeout=_settings().http_timeout,
                          data={"token": record["refresh_token"],
                                "token_type_hint": "refresh_token"},
                          auth=(client.client_id, client.client_secret))
        except requests.RequestException:
            log.info("refresh token revocation failed")
    params = {"post_logout_redirect_uri": _settings().post_logout_redirect_uri,
              "client_id": client.client_id}
    if record.get("id_token"):
        params["id_token_hint"] = record["id_token"]
    return redirect(f"{metadata['end_session_endpoint']}?{urlencode(params)}", 303)
