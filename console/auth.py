"""Signing in to the console through Portico (authorization code + PKCE S256), the
server-side session that keeps the person's tokens, refreshing them, and logout.

Like the sample portal's: the browser holds only a signed cookie with a random session id;
the tokens stay in Redis (or this process). CSRF is the portal's (one token per session,
checked on every POST).
"""

from __future__ import annotations

import logging
import secrets
import time
from typing import Any
from urllib.parse import urlencode

import requests
from authlib.common.errors import AuthlibBaseError
from authlib.integrations.flask_client import OAuth
from flask import Blueprint, Flask, abort, current_app, redirect, session, url_for
from flask_babel import gettext

from examples.portal.auth import SignedOut, check_csrf, csrf_token
from examples.portal.store import SessionStore

from .settings import ConsoleSettings

__all__ = ["SignedOut", "check_csrf", "csrf_token", "init_oauth", "current_user",
           "access_token", "bp"]

log = logging.getLogger("portico.console")
bp = Blueprint("auth", __name__)
REFRESH_MARGIN = 30  # seconds before expiry at which a token is refreshed
SETTINGS, SESSIONS, OAUTH = "console.settings", "console.sessions", "console.oauth"


def init_oauth(app: Flask, settings: ConsoleSettings, backend) -> None:
    """Register Portico as the ``portico`` OAuth client (if the console has credentials)."""
    oauth = OAuth(app, cache=backend)  # state, nonce and PKCE verifier stay server-side
    credentials = settings.credentials()
    if credentials is not None:
        oauth.register(
            "portico", client_id=credentials[0], client_secret=credentials[1],
            server_metadata_url=settings.issuer.rstrip("/") + "/.well-known/openid-configuration",
            client_kwargs={"scope": settings.scope, "code_challenge_method": "S256",
                           "timeout": settings.http_timeout})
    app.extensions[OAUTH] = oauth
    app.extensions[SESSIONS] = SessionStore(backend, settings.session_ttl)
    app.extensions[SETTINGS] = settings


def settings() -> ConsoleSettings:
    return current_app.extensions[SETTINGS]


def _sessions() -> SessionStore:
    return current_app.extensions[SESSIONS]


def _client():
    client = current_app.extensions[OAUTH].create_client("portico")
    if client is None:
        abort(503, description=gettext(
            "The console has no client credentials yet: run `python -m console.register` "
            "(make run does it on first start)."))
    return client


def current_user() -> dict[str, Any] | None:
    """The session record (``sub``, ``name``, tokens), or None."""
    sid = session.get("sid")
    return _sessions().load(sid) if sid else None


def access_token(record: dict[str, Any]) -> str:
    """A live access token of the signed-in person, refreshed (rotating, under a lock so two
    requests never spend the same refresh token) when about to expire."""
    if record["expires_at"] - REFRESH_MARGIN > time.time():
        return record["access_token"]
    sid = session["sid"]
    store = _sessions()
    with store.lock(sid):
        fresh = store.load(sid)
        if fresh is None:
            raise SignedOut()
        if fresh["expires_at"] - REFRESH_MARGIN > time.time():
            return fresh["access_token"]
        token = _refresh(fresh.get("refresh_token"))
        if token is None:
            store.delete(sid)
            raise SignedOut()
        fresh.update(_token_fields(token))
        store.save(sid, fresh)
        return fresh["access_token"]


def _refresh(refresh_token: str | None) -> dict[str, Any] | None:
    if not refresh_token:
        return None
    client = _client()
    try:
        response = requests.post(
            client.load_server_metadata()["token_endpoint"], timeout=settings().http_timeout,
            data={"grant_type": "refresh_token", "refresh_token": refresh_token},
            auth=(client.client_id, client.client_secret))
    except requests.RequestException:
        return None
    return response.json() if response.status_code == 200 else None


def _token_fields(token: dict[str, Any]) -> dict[str, Any]:
    fields = {"access_token": token["access_token"],
              "expires_at": token.get("expires_at") or int(time.time()) + int(token.get(
                  "expires_in", 300))}
    for name in ("refresh_token", "id_token"):
        if token.get(name):
            fields[name] = token[name]
    return fields


@bp.get("/login")
def login():
    """Off to Portico's authorization endpoint (state, nonce and PKCE S256 included)."""
    return _client().authorize_redirect(settings().redirect_uri)


@bp.get("/callback")
def callback():
    """Exchange the code (ID token verified by authlib), keep the tokens server-side under a
    fresh session id, and go to the search page."""
    client = _client()
    try:
        token = client.authorize_access_token()
        profile = client.userinfo(token=token)
    except (AuthlibBaseError, requests.RequestException, ValueError) as error:
        log.info("sign-in failed", extra={"error": type(error).__name__})
        abort(400, description=gettext("Portico did not sign you in."))
    claims = token.get("userinfo") or {}
    record = {"sub": claims.get("sub") or profile.get("sub"),
              "name": profile.get("name") or profile.get("preferred_username") or "",
              "language": profile.get("locale")}
    record.update(_token_fields(token))
    if session.get("sid"):
        _sessions().delete(session["sid"])
    session.clear()  # a new session id at sign-in (no session fixation)
    sid = secrets.token_urlsafe(32)
    _sessions().save(sid, record)
    session["sid"] = sid
    return redirect(url_for("console.search"), 303)


@bp.post("/logout")
def logout():
    """Forget the tokens here, revoke the refresh token, then log out at Portico too."""
    sid = session.pop("sid", None)
    record = _sessions().load(sid) if sid else None
    if sid:
        _sessions().delete(sid)
    session.clear()
    client = current_app.extensions[OAUTH].create_client("portico")
    if record is None or client is None:
        return redirect(url_for("console.search"), 303)
    metadata = client.load_server_metadata()
    if record.get("refresh_token") and metadata.get("revocation_endpoint"):
        try:
            requests.post(metadata["revocation_endpoint"], timeout=settings().http_timeout,
                          data={"token": record["refresh_token"],
                                "token_type_hint": "refresh_token"},
                          auth=(client.client_id, client.client_secret))
        except requests.RequestException:
            log.info("refresh token revocation failed")
    params = {"post_logout_redirect_uri": settings().post_logout_redirect_uri,
              "client_id": client.client_id}
    if record.get("id_token"):
        params["id_token_hint"] = record["id_token"]
    return redirect(f"{metadata['end_session_endpoint']}?{urlencode(params)}", 303)
