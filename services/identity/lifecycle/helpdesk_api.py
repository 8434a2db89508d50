"""The help desk's JSON API on users (``/admin/v1/users``).

Authorization: a client token for identity's audience with the scope ``iam.helpdesk``
(the help-desk scope enrollment's admin API uses too) **or** a person's token when
permissions says that person holds the help-desk platform power.
"""

from __future__ import annotations

from typing import Any

from marshmallow import RAISE

from services.common import powers
from services.common.app import context, request_id
from services.common.auth import authenticate
from services.common.powers import require_power
from services.identity.api.common import BEARER, LIFECYCLE, NO_STORE, Blueprint
from services.identity.enrollment.config import config_from as enrollment_config
from services.identity.enrollment.schemas import EnrollmentViewSchema
from services.identity.scopes import HELPDESK

from . import helpdesk
from .domain import Actor, get_user
from .i18n import _
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


def require_helpdesk(view):
    """A client token with ``iam.helpdesk``, or a person holding the help-desk platform
    power (asked of permissions on each request, never read from the token)."""
    return require_power(powers.HELPDESK, scope=HELPDESK)(view)


def agent() -> Actor:
    return Actor("helpdesk", str(authenticate().get("sub")), client_ip(), request_id())


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


@blp.post("/admin/v1/users/<user_id>/reactivate")
@require_helpdesk
@blp.arguments(WhySchema)
@blp.response(200, HelpdeskActionSchema)
@blp.problems(400, 401, 403, 404, 409)
@blp.doc(security=BEARER)
def reactivate(body: dict[str, Any], user_id: str) -> Any:
    """Reactivate an inactive user (tracking number returned).

    `why` required, audited and published."""
    with context().db.transaction() as session:
        tracking = helpdesk.reactivate(session, cfg(), user_id, agent(), body["why"].strip())
    return {"user": _user(user_id), "tracking_number": tracking}, NO_STORE


@blp.post("/admin/v1/users/<user_id>/unlock")
@require_helpdesk
@blp.arguments(WhySchema)
@blp.response(200, HelpdeskActionSchema)
@blp.problems(400, 401, 403, 404, 409)
@blp.doc(security=BEARER)
def unlock(body: dict[str, Any], user_id: str) -> Any:
    """Lift a lockout.

    `why` required, audited and published."""
    with context().db.transaction() as session:
        helpdesk.unlock(session, cfg(), user_id, agent(), body["why"].strip())
    return {"user": _user(user_id)}, NO_STORE


@blp.post("/admin/v1/users/<user_id>/disable")
@require_helpdesk
@blp.arguments(WhySchema)
@blp.response(200, HelpdeskActionSchema)
@blp.problems(400, 401, 403, 404, 409)
@blp.doc(security=BEARER)
def disable(body: dict[str, Any], user_id: str) -> Any:
    """Disable; ends sessions.

    `why` required, audited and published."""
    ctx = context()
    with ctx.db.transaction() as session:
        helpdesk.disable(session, cfg(), ctx.redis, ctx.settings.redis_namespace, user_id,
                         agent(), body["why"].strip())
    return {"user": _user(user_id)}, NO_STORE


@blp.post("/admin/v1/users/<user_id>/username-reminder")
@require_helpdesk
@blp.arguments(WhySchema)
@blp.response(202, SentSchema)
@blp.problems(400, 401, 403, 404, 409)
@blp.doc(security=BEARER)
def username_reminder(body: dict[str, Any], user_id: str) -> Any:
    """Email the user their username.

    `why` required, audited and published."""
    with context().db.transaction() as session:
        helpdesk.remind_username(session, cfg(), user_id, agent(), body["why"].strip())
    return {"sent": True}, NO_STORE


@blp.post("/admin/v1/enrollments/<enrollment_id>/access-code/reissue")
@require_helpdesk
@blp.arguments(WhySchema)
@blp.response(200, EnrollmentViewSchema, description="The enrollment")
@blp.problems(400, 401, 403, 404, 409)
@blp.doc(security=BEARER)
def reissue_access_code(body: dict[str, Any], enrollment_id: str) -> Any:
    """Re-issue an enrollment's Access Code with a `why` (help desk).

    Audited and published as a help-desk action."""
    config = cfg()
    with context().db.transaction() as session:
        enrollment = helpdesk.reissue_access_code(
            session, config, enrollment_config(context().settings, clock=config.now),
            enrollment_id, agent(), body["why"].strip())
    return enrollment, NO_STORE
