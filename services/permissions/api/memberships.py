"""``/v1/membership-requests``: newcomers waiting to join a company; the company's
principal administrator or the help desk approves or rejects."""

from __future__ import annotations

from typing import Any

from services.common.api import Blueprint
from services.common.auth import require_auth

from .. import memberships as use_cases
from ..models import MembershipRequest
from . import schemas
from .common import actor, now, unit_of_work

blp = Blueprint("memberships", __name__, url_prefix="/v1/membership-requests",
                description="Membership requests: the principal administrator or the help "
                            "desk admits a newcomer to the company.")


@blp.get("")
@require_auth()
@blp.arguments(schemas.MembershipListQuery, location="query")
@blp.response(200, schemas.MembershipRequestList)
def list_requests(query: dict[str, Any]) -> dict[str, Any]:
    """``mine``: your own request; ``to_decide``: the open requests of the company you are
    principal of (the help desk: all open requests)."""
    with unit_of_work() as session:
        return {"items": use_cases.list_membership_requests(session, actor=actor(session),
                                                            view=query["view"])}


@blp.get("/<request_id>")
@require_auth()
@blp.response(200, schemas.MembershipRequestOut)
def get_one(request_id: str) -> MembershipRequest:
    with unit_of_work() as session:
        return use_cases.get_membership_request(session, request_id=request_id,
                                                actor=actor(session))


@blp.post("/<request_id>/approve")
@require_auth()
@blp.arguments(schemas.MembershipApprove)
@blp.response(200, schemas.MembershipRequestOut)
def approve(body: dict[str, Any], request_id: str) -> MembershipRequest:
    """Admit the newcomer: the default role, and the named accounts approved (default: all)."""
    with unit_of_work() as session:
        return use_cases.approve_membership(session, request_id=request_id,
                                            actor=actor(session), now=now(), **body)


@blp.post("/<request_id>/reject")
@require_auth()
@blp.arguments(schemas.Comment)
@blp.response(200, schemas.MembershipRequestOut)
def reject(body: dict[str, Any], request_id: str) -> MembershipRequest:
    """Refuse the newcomer: they keep no role, accounts or company view."""
    with unit_of_work() as session:
        return use_cases.reject_membership(session, request_id=request_id,
                                           actor=actor(session), now=now(), **body)
