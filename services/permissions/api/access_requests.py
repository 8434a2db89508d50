"""``/v1/access-requests``: ask, list, read, approve, reject, co-sign, cancel."""

from __future__ import annotations

from typing import Any

from services.common.api import Blueprint
from services.common.auth import require_auth

from .. import access_requests as use_cases
from ..models import AccessRequest
from . import schemas
from .common import actor, now, settings, unit_of_work

blp = Blueprint("access_requests", __name__, url_prefix="/v1/access-requests",
                description="Access requests: only the principal administrator decides.")


@blp.post("")
@require_auth()
@blp.arguments(schemas.AccessRequestCreate)
@blp.response(201, schemas.AccessRequestOut)
def create(body: dict[str, Any]) -> AccessRequest:
    """Ask for entitlements for yourself, or (as an administrator) for a user of your company."""
    with unit_of_work() as session:
        return use_cases.create_access_request(
            session, actor=actor(session), now=now(), ttl_days=settings().request_ttl_days,
            **body)


@blp.get("")
@require_auth()
@blp.arguments(schemas.ListQuery, location="query")
@blp.response(200, schemas.AccessRequestList)
def list_requests(query: dict[str, Any]) -> dict[str, Any]:
    with unit_of_work() as session:
        items = use_cases.list_access_requests(session, actor=actor(session), view=query["view"])
        return {"items": items}


@blp.get("/<request_id>")
@require_auth()
@blp.response(200, schemas.AccessRequestOut)
def get_one(request_id: str) -> AccessRequest:
    with unit_of_work() as session:
        return use_cases.get_access_request(session, request_id=request_id,
                                            actor=actor(session))


def _decision(use_case):  # one view per transition, same shape
    def view(body: dict[str, Any], request_id: str) -> AccessRequest:
        with unit_of_work() as session:
            return use_case(session, request_id=request_id, actor=actor(session),
                            comment=body["comment"], now=now())

    view.__name__ = use_case.__name__
    view.__doc__ = use_case.__doc__
    return view


for _path, _use_case in (("approve", use_cases.approve_access_request),
                         ("reject", use_cases.reject_access_request),
                         ("cosign", use_cases.cosign_access_request),
                         ("cancel", use_cases.cancel_access_request)):
    blp.post(f"/<request_id>/{_path}")(
        require_auth()(blp.arguments(schemas.Comment)(
            blp.response(200, schemas.AccessRequestOut)(_decision(_use_case)))))
