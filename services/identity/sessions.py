"""Server-side login sessions in Redis, and the CSRF token bound to them.

The browser holds only a random session id (cookie HttpOnly, SameSite=Lax, Secure unless
configured off for plain-http development). A login always starts a new session id, so
an id planted before login (session fixation) is worth nothing afterwards. Each session
carries a random CSRF token that every form echoes in ``csrf_token``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from flask import Response, g, request

from services.common.app import context
from services.common.streams import key

from .oidc.backchannel import queue_logouts

COOKIE = "portico_session"


@dataclass
class LoginSession:
    sid: str
    csrf: str
    user_id: str | None = None
    auth_time: int | None = None
    amr: list[str] = field(default_factory=list)
    # The user who gave the right password and still owes a second factor (not signed
    # in), and when (Unix time).
    pending_user_id: str | None = None
    pending_since: int | None = None
    new: bool = False

    @property
    def authenticated(self) -> bool:
        return self.user_id is not None

    def to_json(self) -> str:
        return json.dumps({"csrf": self.csrf, "user_id": self.user_id,
                           "auth_time": self.auth_time, "amr": self.amr,
                           "pending_user_id": self.pending_user_id,
                           "pending_since": self.pending_since})


def _redis_key(sid: str) -> str:
    return key(context().settings.redis_namespace, "session", sid)


def _store(session: LoginSession) -> None:
    ctx = context()
    ctx.redis.set(_redis_key(session.sid), session.to_json(), ex=ctx.settings.session_ttl)


def load_session(create: bool = False) -> LoginSession | None:
    """The request's login session; with ``create`` a fresh anonymous one when it has none.

    Raises ``redis.RedisError`` when Redis cannot answer (mapped to 503: fail closed).
    """
    if "login_session" in g:
        return g.login_session
    sid = request.cookies.get(COOKIE, "")
    found: LoginSession | None = None
    if sid and len(sid) <= 128:
        raw = context().redis.get(_redis_key(sid))
        if raw:
            data: dict[str, Any] = json.loads(raw)
            found = LoginSession(sid=sid, csrf=data["csrf"], user_id=data.get("user_id"),
                                 auth_time=data.get("auth_time"), amr=data.get("amr") or [],
                                 pending_user_id=data.get("pending_user_id"),
                                 pending_since=data.get("pending_since"))
    if found is None and create:
        found = LoginSession(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                             new=True)
        _store(found)
    g.login_session = found
    return found


def await_second_factor(session: LoginSession, user_id: str | None) -> None:
    """Remember (or, with None, forget) the user whose second factor this session awaits."""
    session.pending_user_id = user_id
    session.pending_since = int(time.time()) if user_id else None
    _store(session)


def pending_user(session: LoginSession | None, within: int) -> str | None:
    """The user awaiting a second factor in ``session`` since less than ``within`` seconds."""
    if session is None or session.pending_user_id is None or session.pending_since is None:
        return None
    return session.pending_user_id if time.time() - session.pending_since < within else None


def start_authenticated_session(user_id: str, amr: list[str]) -> LoginSession:
    """Replace whatever session the request had with a new id for ``user_id``."""
    old = request.cookies.get(COOKIE, "")
    if old and len(old) <= 128:
        context().redis.delete(_redis_key(old))
    session = LoginSession(sid=secrets.token_urlsafe(32), csrf=secrets.token_urlsafe(32),
                           user_id=user_id, auth_time=int(time.time()), amr=amr, new=True)
    _store(session)
    g.login_session = session
    return session


def add_methods(session: LoginSession, amr: list[str]) -> None:
    """Add methods the signed-in user proved in this session (a factor enrolled here,
    confirmed with its first code): the session keeps its id, sign-in time and lifetime."""
    session.amr = list(dict.fromkeys([*session.amr, *amr]))
    context().redis.set(_redis_key(session.sid), session.to_json(), keepttl=True)


def end_session() -> str | None:
    """Delete the request's login session; returns the id it had (the ``sid`` claim)."""
    sid = request.cookies.get(COOKIE, "")
    if sid and len(sid) <= 128:
        context().redis.delete(_redis_key(sid))
        g.login_session = None
        g.clear_session_cookie = True
        return sid
    return None


def end_session_telling_clients(login: LoginSession | None) -> None:
    """End the request's login session; if it was signed in, first queue a back-channel
    logout for each client that took part (in a transaction of its own, so a failure
    leaves the session as it was)."""
    if login is not None and login.authenticated:
        ctx = context()
        with ctx.db.transaction() as db_session:
            queue_logouts(db_session, ctx.redis, ctx.settings.redis_namespace,
                          login.user_id, public_sid(login.sid))
    end_session()


def public_sid(sid: str) -> str:
    """The ``sid`` claim for a session: derived, so an ID token never carries the cookie value."""
    return hashlib.sha256(b"portico-sid:" + sid.encode()).hexdigest()[:32]


def csrf_valid(session: LoginSession | None, submitted: str | None) -> bool:
    if session is None or not submitted:
        return False
    return hmac.compare_digest(session.csrf.encode(), submitted.encode())


def apply_cookie(response: Response) -> Response:
    """Set (or clear) the session cookie according to what this request did."""
    settings = context().settings
    if g.get("clear_session_cookie"):
        response.delete_cookie(COOKIE, path="/", secure=settings.session_cookie_secure,
                               httponly=True, samesite="Lax")
        return response
    session: LoginSession | None = g.get("login_session")
    if session is not None and session.new:
        response.set_cookie(COOKIE, session.sid, max_age=settings.session_ttl, path="/",
                            secure=settings.session_cookie_secure, httponly=True,
                            samesite="Lax")
    return response
