"""The help desk's JSON API on users (``/admin/v1/users``), their second factors included.

Authorization: a client token for identity's audience with the scope ``iam.helpdesk``
(the help-desk scope enrollment's admin API uses too) **or** a person's token when
permissions says that person holds the help-desk platform power.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from marshmallow import RAISE

from services.common import powers
from services.common.app import context, request_id
from services.common.auth import authenticate
from services.common.powers import require_power
from services.identity.api.common import BEARER, LIFECYCLE, NO_STORE, Blueprint
from services.identity.enrollment.schemas import EnrollmentViewSchema
from services.identity.enrollment.web import cfg as enrollment_config
from services.identity.factors import helpdesk as factors_helpdesk
from services.identity.factors.pages import cfg as factors_config
from services.identity.factors.schemas import FactorsResetSchema, UserFactorsSchema
from services.identity.i18n import _
from services.identity.scopes import HELPDESK

from . import helpdesk
from .domain import Actor, get_user
from .schemas import (
    HelpdeskActionSchema,
    HelpdeskUserListSchema,
    HelpdeskUserSchema,
    SentSchema,
    UserQuerySchema,
    WhySchema,
)
from .web import cfg, client_ip

blp = Blueprint("lifecycle_helpdesk", __name__, tag=LIFECYCLE, gettext=_)
WHY = "`why` required, audited and published."


def require_helpdesk(view):
    """A client token with ``iam.helpdesk``, or a person holding the help-desk platform
    power (asked of permissions on each request, never read from the token)."""
    return require_power(powers.HELPDESK, scope=HELPDESK)(view)


def agent() -> Actor:
    return Actor("helpdesk", str(authenticate().get("sub")), client_ip(), request_id())


def require_supervisor(view):
    """A client token with ``iam.helpdesk``, or a person holding the help-desk
    *supervisor* power: for the actions that take away a user's means of signing in
    (disable, reset the factors), which an agent alone may not do (least privilege)."""
    return require_power(powers.HELPDESK_SUPERVISOR, scope=HELPDESK)(view)


def helpdesk_action(rule: str, status: int = 200, schema: Any = HelpdeskActionSchema,
                    description: str | None = None,
                    guard: Callable[[Any], Any] = require_helpdesk) -> Callable[[Any], Any]:
    """``POST rule``: a help-desk action, its ``why`` (required, audited and published) in
    the body and passed to the view; ``guard`` says who may (the help-desk power unless
    told otherwise)."""

    def decorate(view: Any) -> Any:
        @wraps(view)
        def with_why(body: dict[str, Any], **kwargs: Any) -> Any:
            return view(why=body["why"].strip(), **kwargs)

        decorated = with_why
        for decorator in (blp.doc(security=BEARER, description=WHY),
                          blp.problems(400, 401, 403, 404, 409),
                          blp.response(status, schema, description=description),
                          blp.arguments(WhySchema), guard, blp.post(rule)):
            decorated = decorator(decorated)
        return decorated

    return decorate


def _user(user_id: str) -> dict[str, Any]:
    with context().db.read() as session:
        return helpdesk.user_view(session, cfg(), get_user(session, user_id))


@blp.get("/admin/v1/users")
@require_helpdesk
@blp.arguments(UserQuerySchema, location="query", unknown=RAISE)
@blp.response(200, HelpdeskUserListSchema)
@blp.problems(401, 403)
@blp.doc(security=BEARER)
def search_users(query: dict[str, Any]) -> Any:
    """Search users by name/email/username words, email, company (help desk).

    ``q`` (name, email or username words), ``email``, ``company_id``, ``company`` (name),
    ``status``; at most ``limit`` (50) users."""
    config = cfg()
    with context().db.read() as session:
        found = helpdesk.search(session, helpdesk.UserQuery(**query))
        items = [helpdesk.user_view(session, config, user, company) for user, company in found]
    return {"items": items}, NO_STORE


@blp.get("/admin/v1/users/<user_id>")
@require_helpdesk
@blp.response(200, HelpdeskUserSchema)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def read_user(user_id: str) -> Any:
    """One user (help desk)."""
    return _user(user_id), NO_STORE


@blp.get("/admin/v1/users/<user_id>/factors")
@require_helpdesk
@blp.response(200, UserFactorsSchema)
@blp.problems(401, 403, 404)
@blp.doc(security=BEARER)
def list_factors(user_id: str) -> Any:
    """A user's second factors, without any secret (help desk)."""
    with context().db.read() as session:
        return factors_helpdesk.factors_of(session, user_id), NO_STORE


@helpdesk_action("/admin/v1/users/<user_id>/reactivate")
def reactivate(why: str, user_id: str) -> Any:
    """Reactivate an inactive user (tracking number returned)."""
    with context().db.transaction() as session:
        tracking = helpdesk.reactivate(session, cfg(), user_id, agent(), why)
    return {"user": _user(user_id), "tracking_number": tracking}, NO_STORE


@helpdesk_action("/admin/v1/users/<user_id>/unlock")
def unlock(why: str, user_id: str) -> Any:
    """Lift a lockout."""
    with context().db.transaction() as session:
        helpdesk.unlock(session, cfg(), user_id, agent(), why)
    return {"user": _user(user_id)}, NO_STORE


@helpdesk_action("/admin/v1/users/<user_id>/disable", guard=require_supervisor)
def disable(why: str, user_id: str) -> Any:
    """Disable; ends sessions."""
    ctx = context()
    with ctx.db.transaction() as session:
        helpdesk.disable(session, cfg(), ctx.redis, ctx.settings.redis_namespace, user_id,
                         agent(), why)
    return {"user": _user(user_id)}, NO_STORE


@helpdesk_action("/admin/v1/users/<user_id>/username-reminder", 202, SentSchema)
def username_reminder(why: str, user_id: str) -> Any:
    """Email the user their username."""
    with context().db.transaction() as session:
        helpdesk.remind_username(session, cfg(), user_id, agent(), why)
    return {"sent": True}, NO_STORE


@helpdesk_action("/admin/v1/users/<user_id>/factors/reset", schema=FactorsResetSchema,
                 description="The tracking number and what was removed",
                 guard=require_supervisor)
def reset_factors(why: str, user_id: str) -> Any:
    """Remove every second factor of the user (TOTP, recovery codes, passkeys) and email
    them; every session and refresh token of theirs ends, and the login then asks for the
    password alone. 409 when there is none."""
    ctx = context()
    with ctx.db.transaction() as session:
        done = factors_helpdesk.reset(session, factors_config(), ctx.redis,
                                      ctx.settings.redis_namespace, user_id, agent(), why)
    return {"tracking_number": done.tracking_number, "removed": done.removed,
            "signed_out": done.signed_out}, NO_STORE


@helpdesk_action("/admin/v1/enrollments/<enrollment_id>/access-code/reissue",
                 schema=EnrollmentViewSchema, description="The enrollment")
def reissue_access_code(why: str, enrollment_id: str) -> Any:
    """Re-issue an enrollment's Access Code (published as a help-desk action)."""
    config = cfg()
    with context().db.transaction() as session:
        enrollment = helpdesk.reissue_access_code(
            session, config, enrollment_config(), enrollment_id, agent(), why)
    return enrollment, NO_STORE
