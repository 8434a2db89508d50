"""What the lifecycle's pages and APIs share: configuration, actors, rate limits, messages."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from flask import current_app, render_template, request

from services.common.app import context, request_id
from services.common.errors import flatten_errors
from services.identity import sessions
from services.identity.api.common import counted_first, text_in
from services.identity.i18n import N_, _, language
from services.identity.models import User
from services.identity.ratelimit import TooManyRequests, limit_request
from services.identity.security_answers import QUESTIONS

from . import profile
from .config import LifecycleConfig
from .domain import Actor

RESET_SENT = N_("If an account matches, we have sent an email with a link to reset the "
                "password. The link works once, for 30 minutes.")
REMINDER_SENT = N_("If an account uses this address, we have sent its username to it.")
WRONG_ANSWER = N_("The answer is not correct. After three wrong answers the link stops "
                  "working and you must ask for a new one.")
PASSWORD_RESET = N_("Your password was changed. Sign in with it now.")
# Changing the email address (where password resets are sent) needs a sign-in within the
# last RECENT_SIGN_IN seconds, so that a session left open on a shared computer, or a
# stolen token, cannot take the account over.
RECENT_SIGN_IN = 300


def cfg() -> LifecycleConfig:
    """The lifecycle configuration the app was created with."""
    return current_app.extensions["lifecycle"].config


def client_ip() -> str:
    return request.remote_addr or "-"


def anonymous() -> Actor:
    return Actor("anonymous", None, client_ip(), request_id())


def user_actor(user_id: str) -> Actor:
    return Actor("user", user_id, client_ip(), request_id())


def limit(scope: str, target: str | None = None) -> None:
    """Count this unauthenticated request per client IP and, when given, per target."""
    settings = context().settings
    limit_request(scope, settings.recovery_rate_limit_ip, settings.recovery_rate_limit_target,
                  target)


def limit_link(scope: str) -> None:
    """Count a request that carries an emailed link's token, per client IP. The token
    (256 random bits) cannot be guessed; what a link allows is capped by the use case."""
    limit_request(scope, context().settings.link_rate_limit_ip)


def limited(scope: str, target: str | None = None) -> Callable[[Any], Any]:
    """An API view whose requests are counted with :func:`limit` (per the body's
    ``target`` field, when given) before their body is validated."""
    return counted_first(lambda body: limit(scope, text_in(body, target) if target else None),
                         _)


def link_limited(scope: str) -> Callable[[Any], Any]:
    """An API view whose requests are counted with :func:`limit_link` before their body
    is validated."""
    return counted_first(lambda body: limit_link(scope), _)


def translated(messages: Any) -> dict[str, list[str]]:
    return {name: [_(m) for m in msgs] for name, msgs in flatten_errors(messages).items()}


def question_text(key: str) -> str:
    """A security question's text in the request's language."""
    return _(QUESTIONS.get(key, key))


def page(template: str, status: int = 200, **values: Any):
    session = sessions.load_session(create=True)
    assert session is not None
    return render_template(template, lang=language(), csrf_token=session.csrf, _l=_,
                           ui_locales=language(), **values), status


def too_many_page(exc: TooManyRequests):
    """The lifecycle pages' answer to a rate limit: a 429 page with ``Retry-After``."""
    html, _status = page("lifecycle/message.html", 429, title=_("Too many attempts"),
                         message=_("Too many attempts. Try again later."))
    return html, 429, {"Retry-After": str(exc.retry_after)}


def csrf_ok() -> bool:
    return sessions.csrf_valid(sessions.load_session(create=True), request.form.get("csrf_token"))


def signed_in_recently(auth_time: Any) -> bool:
    return isinstance(auth_time, int | float) and time.time() - auth_time <= RECENT_SIGN_IN


def asks_email_change(user_id: str, changes: dict[str, Any]) -> bool:
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
