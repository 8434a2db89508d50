"""``/admin/v1``: the help desk's (and principals') administration of companies and grants."""

from __future__ import annotations

from typing import Any

from flask import Response

from services.common.api import Blueprint
from services.common.auth import current_claims, require_auth
from services.common.powers import is_client_token

from .. import admins, platform
from .. import grants as grant_cases
from .. import scopes as permission_scopes
from . import schemas
from .common import actor, now, scopes, unit_of_work

blp = Blueprint("admin", __name__, url_prefix="/admin/v1",
                description="Help desk: principals, administrators, programs, revocations; "
                            "platform roles.")


@blp.get("/companies/<company_id>")
@require_auth()
@blp.response(200, schemas.CompanyOut)
def company(company_id: str) -> dict[str, Any]:
    """The company's administrators and program: the help desk, its administrators, and a
    trusted service (a client token with ``permissions.read``: identity asks who the
    principal is before it lets them change the company's MFA policy)."""
    reader = is_client_token(current_claims()) and permission_scopes.READ in scopes()
    with unit_of_work() as session:
        return admins.company_view(session, company_id, actor(session), trusted_client=reader)


@blp.put("/companies/<company_id>/principal")
@require_auth()
@blp.arguments(schemas.PrincipalIn)
@blp.response(200, schemas.CompanyOut)
def principal(body: dict[str, Any], company_id: str) -> dict[str, Any]:
    """Designate or transfer the company's principal administrator (help desk only)."""
    with unit_of_work() as session:
        return admins.designate_principal(session, company_id=company_id, actor=actor(session),
                                          now=now(), **body)


@blp.put("/companies/<company_id>/administrators/<user_id>")
@require_auth()
@blp.arguments(schemas.Why)
@blp.response(200, schemas.CompanyOut)
def add_secondary(body: dict[str, Any], company_id: str, user_id: str) -> dict[str, Any]:
    with unit_of_work() as session:
        return admins.add_secondary(session, company_id=company_id, user_id=user_id,
                                    actor=actor(session), why=body["why"], now=now())


@blp.delete("/companies/<company_id>/administrators/<user_id>")
@require_auth()
@blp.arguments(schemas.Why)
@blp.response(204)
def remove_secondary(body: dict[str, Any], company_id: str, user_id: str) -> Response:
    with unit_of_work() as session:
        admins.remove_secondary(session, company_id=company_id, user_id=user_id,
                                actor=actor(session), why=body["why"], now=now())
    return Response(status=204)


@blp.put("/companies/<company_id>/program")
@require_auth()
@blp.arguments(schemas.ProgramIn)
@blp.response(200, schemas.CompanyOut)
def program(body: dict[str, Any], company_id: str) -> dict[str, Any]:
    """Restrict the entitlements the company's program allows (null: the whole catalog)."""
    with unit_of_work() as session:
        return admins.set_program(session, company_id=company_id, actor=actor(session),
                                  allowed=body["allowed_entitlements"], why=body["why"],
                                  now=now())


@blp.delete("/grants/<grant_id>")
@require_auth()
@blp.arguments(schemas.Why)
@blp.response(204)
def revoke(body: dict[str, Any], grant_id: str) -> Response:
    """Revoke at once (help desk, or the principal administrator of the grant's company)."""
    with unit_of_work() as session:
        grant_cases.revoke_grant(session, grant_id=grant_id, actor=actor(session),
                                 why=body["why"], now=now())
    return Response(status=204)


@blp.get("/platform-roles")
@require_auth()
@blp.arguments(schemas.PlatformRoleQuery, location="query")
@blp.response(200, schemas.PlatformRoleList)
def platform_roles(query: dict[str, Any]) -> dict[str, Any]:
    """Who holds which platform role (platform administrators and the help desk)."""
    with unit_of_work() as session:
        return {"items": platform.list_platform_roles(session, actor=actor(session),
                                                      user_id=query.get("user_id"))}


@blp.put("/platform-roles/<user_id>/<role>")
@require_auth()
@blp.arguments(schemas.Reason)
@blp.response(200, schemas.PlatformRoleOut)
def grant_platform_role(body: dict[str, Any], user_id: str, role: str) -> dict[str, Any]:
    """Grant a platform role (help-desk agent or supervisor, platform administrator, auditor):
    platform administrators only, never to themselves, with a reason."""
    with unit_of_work() as session:
        return platform.grant_platform_role(session, user_id=user_id, role=role,
                                            actor=actor(session), why=body["why"], now=now())


@blp.delete("/platform-roles/<user_id>/<role>")
@require_auth()
@blp.arguments(schemas.Reason)
@blp.response(204)
def revoke_platform_role(body: dict[str, Any], user_id: str, role: str) -> Response:
    """Revoke a platform role (platform administrators only, with a reason); refused at every
    service on the holder's next request."""
    with unit_of_work() as session:
        platform.revoke_platform_role(session, user_id=user_id, role=role,
                                      actor=actor(session), why=body["why"], now=now())
    return Response(status=204)
