"""``/v1/me`` (bearer token: audience identity, scope ``profile``): the user's own profile,
email change and password change (the pages: :mod:`.profile_pages`).

A new email address needs a sign-in within :data:`.web.RECENT_SIGN_IN` seconds: the API
answers RFC 9470's ``insufficient_user_authentication`` with ``max_age``, and the client
signs the user in again (``max_age=300`` or ``prompt=login`` at /authorize).
"""

from __future__ import annotations

from functools import wraps
from typing import Any

from services.common.app import context
from services.common.auth import authenticate, current_claims, require_auth
from services.common.errors import Problem
from services.identity.api.common import BEARER, LIFECYCLE, NO_STORE, Blueprint
from services.identity.i18n import _
from services.identity.models import User, UserStatus

from . import profile
from .schemas import (
    EmailChangedSchema,
    EmailVerifySchema,
    PasswordChangeSchema,
    ProfileChangedSchema,
    ProfileSchema,
    ProfileUpdateSchema,
    TrackingNumberSchema,
)
from .web import (
    RECENT_SIGN_IN,
    anonymous,
    asks_email_change,
    cfg,
    link_limited,
    signed_in_recently,
    user_actor,
)

blp = Blueprint("lifecycle_profile_api", __name__, tag=LIFECYCLE, gettext=_)
SCOPE = "profile"


def _token_user_id() -> str:
    """The token's subject, when it is an active user (not a client's own token)."""
    sub = str(authenticate().get("sub") or "")
    with context().db.read() as session:
        user = session.get(User, sub) if sub else None
        if user is None or user.status != UserStatus.ACTIVE:
            raise Problem(403, "not-a-user-token", "This token does not belong to an active user.")
    return sub


def own_token(view: Any) -> Any:
    """A view for a user's own token: it gets ``user_id``, the token's subject, once that
    is known to be an active user (before the body is read)."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        return view(*args, user_id=_token_user_id(), **kwargs)

    return wrapper


def _profile(user_id: str) -> dict[str, Any]:
    with context().db.transaction() as session:
        return profile.view(session, cfg(), session.get(User, user_id))


@blp.get("/v1/me")
@require_auth(SCOPE)
@own_token
@blp.response(200, ProfileSchema)
@blp.problems(401, 403)
@blp.doc(security=BEARER)
def read_me(user_id: str) -> Any:
    """The caller's profile (scope `profile`)."""
    return _profile(user_id), NO_STORE


@blp.patch("/v1/me")
@require_auth(SCOPE)
@own_token
@blp.arguments(ProfileUpdateSchema)
@blp.response(200, ProfileChangedSchema)
@blp.problems(400, 401, 403)
@blp.doc(security=BEARER)
def update_me(changes: dict[str, Any], user_id: str) -> Any:
    """Update job title, phone (E.164), language, notification preferences (scope `profile`).

    A new email is verified first and needs a sign-in within 5 minutes (the token's
    auth_time; else 401 insufficient_user_authentication with max_age)."""
    if (asks_email_change(user_id, changes)
            and not signed_in_recently(current_claims().get("auth_time"))):
        detail = _("Changing the email address needs a sign-in within the last 5 minutes: "
                   "sign in again, then retry.")
        raise Problem(401, "insufficient-user-authentication", detail, headers={
            "WWW-Authenticate": 'Bearer realm="portico", '
                                'error="insufficient_user_authentication", '
                                'error_description="A more recent sign-in is required", '
                                f'max_age="{RECENT_SIGN_IN}"'}, max_age=RECENT_SIGN_IN)
    with context().db.transaction() as session:
        result = profile.update_profile(session, cfg(), user_id, changes, user_actor(user_id))
    return {"profile": _profile(user_id), "tracking_number": result.tracking_number,
            "email_change_tracking_number": result.email_change_tracking_number}, NO_STORE


@blp.post("/v1/me/password")
@require_auth(SCOPE)
@own_token
@blp.arguments(PasswordChangeSchema)
@blp.response(200, TrackingNumberSchema)
@blp.problems(400, 401, 403)
@blp.doc(security=BEARER)
def change_my_password(data: dict[str, Any], user_id: str) -> Any:
    """Change the password (needs the current one; scope `profile`).

    Ends every login session and refresh token of the user (the caller's access token
    stays valid until it expires)."""
    ctx = context()
    with ctx.db.transaction() as session:
        tracking = profile.change_password(session, cfg(), ctx.redis,
                                           ctx.settings.redis_namespace, user_id,
                                           data["current_password"], data["password"],
                                           user_actor(user_id))
    return {"tracking_number": tracking}, NO_STORE


@blp.post("/v1/me/email-verifications")
@link_limited("email-link")
@blp.arguments(EmailVerifySchema)
@blp.response(200, EmailChangedSchema, description="The new email is in use")
@blp.problems(400, 429)
def verify_email_change(data: dict[str, Any]) -> Any:
    """Follow the link sent to the new address (the token is the proof; no login needed)."""
    with context().db.transaction() as session:
        user = profile.confirm_email_change(session, cfg(), data["token"], anonymous())
        email = user.email
    return {"email": email}, NO_STORE
