"""The help desk's JSON API on users (``/admin/v1/users``).

Authorization: a client token for identity's audience with the scope ``iam.helpdesk``
(the help-desk scope enrollment's admin API uses too) **or** a person's token when
permissions says that person holds the help-desk platform power.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request

from services.common import powers
from services.common.app import context, request_id
from services.common.auth import authenticate
from services.common.powers import require_power
from services.identity.enrollment.schemas import EnrollmentViewSchema
from services.identity.enrollment.web import cfg as enrollment_config
from services.identity.scopes import HELPDESK

from . import helpdesk
from .domain import Actor, get_user
from .schemas import HelpdeskUserSchema, UserQuerySchema, WhySchema
from .web import body, cfg, client_ip, json_response, load

bp = Blueprint("lifecycle_helpdesk", __name__)


def require_helpdesk(view):
    """A client token with ``iam.helpdesk``, or a person holding the help-desk platform
    power (asked of permissions on each request, never read from the token)."""
    return require_power(powers.HELPDESK, scope=HELPDESK)(view)


def agent() -> Actor:
    return Actor("helpdesk", str(authenticate().get("sub")), client_ip(), request_id())


def _why() -> str:
    return load(WhySchema(), body())["why"].strip()


def _user_json(user_id: str) -> dict[str, Any]:
    with context().db.read() as session:
        return HelpdeskUserSchema().dump(helpdesk.user_view(session, cfg(),
                                                            get_user(session, user_id)))


@bp.get("/admin/v1/users")
@require_helpdesk
def search_users():
    """Search by ``q`` (name, email or username words), ``email``, ``company_id``,
    ``company`` (name), ``status``; at most ``limit`` (50) users."""
    query = load(UserQuerySchema(), request.args.to_dict())
    config = cfg()
    with context().db.read() as session:
        found = helpdesk.search(session, helpdesk.UserQuery(**query))
        items = [HelpdeskUserSchema().dump(helpdesk.user_view(session, config, user, company))
                 for user, company in found]
    return json_response({"items": items})


@bp.get("/admin/v1/users/<user_id>")
@require_helpdesk
def read_user(user_id: str):
    return json_response(_user_json(user_id))


@bp.post("/admin/v1/users/<user_id>/reactivate")
@require_helpdesk
def reactivate(user_id: str):
    why = _why()
    with context().db.transaction() as session:
        tracking = helpdesk.reactivate(session, cfg(), user_id, agent(), why)
    return json_response({"user": _user_json(user_id), "tracking_number": tracking})


@bp.post("/admin/v1/users/<user_id>/unlock")
@require_helpdesk
def unlock(user_id: str):
    why = _why()
    with context().db.transaction() as session:
        helpdesk.unlock(session, cfg(), user_id, agent(), why)
    return json_response({"user": _user_json(user_id)})


@bp.post("/admin/v1/users/<user_id>/disable")
@require_helpdesk
def disable(user_id: str):
    why = _why()
    ctx = context()
    with ctx.db.transaction() as session:
        helpdesk.disable(session, cfg(), ctx.redis, ctx.settings.redis_namespace, user_id,
                         agent(), why)
    return json_response({"user": _user_json(user_id)})


@bp.post("/admin/v1/users/<user_id>/username-reminder")
@require_helpdesk
def username_reminder(user_id: str):
    why = _why()
    with context().db.transaction() as session:
        helpdesk.remind_username(session, cfg(), user_id, agent(), why)
    return json_response({"sent": True}, 202)


@bp.post("/admin/v1/enrollments/<enrollment_id>/access-code/reissue")
@require_helpdesk
def reissue_access_code(enrollment_id: str):
    """Enrollment's re-issue with a ``why``, audited and published as a help-desk action."""
    why = _why()
    config = cfg()
    with context().db.transaction() as session:
        enrollment = helpdesk.reissue_access_code(
            session, config, enrollment_config(), enrollment_id, agent(), why)
        result = EnrollmentViewSchema().dump(enrollment)
    return json_response(result)
