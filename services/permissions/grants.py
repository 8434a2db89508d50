"""Use cases on grants: grant, revoke, assign a role's bundle, list and the home page."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.common.auth import token_scopes
from services.common.domain_errors import Forbidden, NotFound
from services.common.powers import (
    HELPDESK,
    HELPDESK_SUPERVISOR,
    PLATFORM_ADMIN,
    PLATFORM_ROLES,
    is_client_token,
)

from . import scopes
from .cache import note_changed
from .domain import audit, publish
from .models import Company, Entitlement, Grant, HomeSection, PlatformRole, RoleEntitlement, User


@dataclass(frozen=True)
class Actor:
    """Who calls, as permissions' own data says: the token's ``sub`` and the platform
    powers their platform roles carry (help desk, help-desk supervisor, platform
    administrator). A client token with the ``permissions.admin`` scope acts as the help
    desk (agent and supervisor); it is never a platform administrator. ``acr``: the
    authentication level of a person's token (None: a client, or a token without one),
    for the entitlements that require one (:mod:`step_up`)."""

    id: str
    helpdesk: bool = False
    supervisor: bool = False
    platform_admin: bool = False
    acr: str | None = None


def live_grants(session: Session, user_id: str, now: datetime, key: str | None = None) -> list[Grant]:
    query = (select(Grant).where(Grant.user_id == user_id, Grant.revoked_at.is_(None),
                                 or_(Grant.expires_at.is_(None), Grant.expires_at > now))
             .order_by(Grant.entitlement_key, Grant.created_at))
    if key is not None:
        query = query.where(Grant.entitlement_key == key)
    return list(session.scalars(query))


def platform_powers(session: Session, user_id: str) -> set[str]:
    """The platform powers an active user's platform roles carry (none for anyone else)."""
    user = session.get(User, user_id)
    if user is None or user.status != "active":
        return set()
    roles = session.scalars(select(PlatformRole.role).where(PlatformRole.user_id == user_id))
    return {power for role in roles for power in PLATFORM_ROLES.get(role, ())}


def resolve_actor(session: Session, claims: dict[str, Any]) -> Actor:
    """The caller as permissions sees them: a person's powers come from the platform roles
    table, never from the token's ``entitlements`` claim or scopes; only a client token's
    scopes count, and only for a client."""
    sub = str(claims.get("sub", ""))
    if is_client_token(claims):
        admin = scopes.ADMIN in token_scopes(claims)
        return Actor(sub, helpdesk=admin, supervisor=admin)
    powers = platform_powers(session, sub)
    acr = claims.get("acr")
    return Actor(sub, helpdesk=HELPDESK in powers, supervisor=HELPDESK_SUPERVISOR in powers,
                 platform_admin=PLATFORM_ADMIN in powers,
                 acr=acr if isinstance(acr, str) else None)


def grant_entitlement(session: Session, *, user: User, key: str, actor_id: str, source: str,
                      now: datetime, accounts: list[dict[str, str]] | None = None,
                      expires_at: datetime | None = None, why: str | None = None) -> Grant:
    """Give ``user`` the entitlement ``key`` (the caller has checked that it may). A
    company entitlement needs a company: platform staff hold platform roles instead."""
    if user.company_id is None:
        raise Forbidden("A person who belongs to no company holds no company entitlement.")
    grant = Grant(id=str(uuid.uuid4()), user_id=user.id, company_id=user.company_id,
                  entitlement_key=key, accounts=accounts, source=source,
                  expires_at=expires_at, created_at=now)
    session.add(grant)
    audit(session, actor_id=actor_id, action="grant.created", target_type="grant",
          target_id=grant.id, company_id=user.company_id, why=why, now=now,
          details={"user_id": user.id, "entitlement": key, "source": source,
                   "accounts": _last5s(accounts)})
    publish(session, "permissions.grant.created",
            {"user_id": user.id, "entitlement": key, "accounts": _last5s(accounts)},
            subject=user.id, company_id=user.company_id)
    note_changed(session, user.id)
    return grant


def _last5s(accounts: list[dict[str, str]] | None) -> list[str] | None:
    return None if accounts is None else [a["last5"] for a in accounts]


def assign_role(session: Session, *, user: User, role: str, actor_id: str, now: datetime,
                why: str | None = None) -> list[Grant]:
    """Grant the role's entitlements the user does not already hold through that role."""
    source = f"role:{role}"
    held = {g.entitlement_key for g in live_grants(session, user.id, now) if g.source == source}
    keys = session.scalars(select(RoleEntitlement.entitlement_key)
                           .where(RoleEntitlement.role_key == role)
                           .order_by(RoleEntitlement.entitlement_key))
    return [grant_entitlement(session, user=user, key=k, actor_id=actor_id, source=source,
                              now=now, why=why) for k in keys if k not in held]


def revoke_role(session: Session, *, user_id: str, role: str, actor_id: str, now: datetime,
                why: str | None = None) -> int:
    grants = [g for g in live_grants(session, user_id, now) if g.source == f"role:{role}"]
    for grant in grants:
        _revoke(session, grant, actor_id, now, why)
    return len(grants)


def revoke_grant(session: Session, *, grant_id: str, actor: Actor, now: datetime,
                 why: str | None = None) -> Grant:
    """Revoke at once. The help desk may revoke any grant; a company's principal
    administrator may revoke grants within the company."""
    grant = session.get(Grant, grant_id)
    if grant is None or grant.revoked_at is not None:
        raise NotFound("No such live grant.")
    company = session.get(Company, grant.company_id)
    is_principal = company is not None and company.principal_user_id == actor.id
    if not (actor.helpdesk or is_principal):
        raise Forbidden("Only the help desk or the company's principal administrator may revoke.")
    _revoke(session, grant, actor.id, now, why)
    return grant


def _revoke(session: Session, grant: Grant, actor_id: str, now: datetime,
            why: str | None) -> None:
    grant.revoked_at = now
    audit(session, actor_id=actor_id, action="grant.revoked", target_type="grant",
          target_id=grant.id, company_id=grant.company_id, why=why, now=now,
          details={"user_id": grant.user_id, "entitlement": grant.entitlement_key})
    publish(session, "permissions.grant.revoked",
            {"user_id": grant.user_id, "entitlement": grant.entitlement_key,
             "accounts": _last5s(grant.accounts)},
            subject=grant.user_id, company_id=grant.company_id)
    note_changed(session, grant.user_id)


def may_view_user(session: Session, actor: Actor, user: User) -> bool:
    """The user themself, the help desk, or an administrator of the user's company (who
    does not see a newcomer the company has not approved)."""
    if actor.helpdesk or actor.id == user.id:
        return True
    from .admins import is_administrator

    return user.membership == "member" and is_administrator(session, user.company_id, actor.id)


def user_entitlements(session: Session, *, user_id: str, actor: Actor, trusted_client: bool,
                      now: datetime) -> dict[str, Any]:
    """The user's live grants (``GET /v1/users/<id>/entitlements``)."""
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("No such user.")
    if not (trusted_client or may_view_user(session, actor, user)):
        raise NotFound("No such user.")
    grants = live_grants(session, user.id, now) if user.status == "active" else []
    return {"user_id": user.id, "company_id": user.company_id, "status": user.status,
            "entitlements": sorted({g.entitlement_key for g in grants}),
            "grants": [{"id": g.id, "entitlement": g.entitlement_key,
                        "accounts": _last5s(g.accounts), "source": g.source,
                        "expires_at": g.expires_at} for g in grants]}


def home_page(session: Session, *, user_id: str, actor: Actor, language: str | None,
              now: datetime) -> dict[str, Any]:
    """The home-page sections ``user_id``'s live entitlements allow, in their language."""
    user = session.get(User, user_id)
    if user is None or not (actor.helpdesk or actor.id == user.id):
        raise NotFound("No such user.")
    lang = language if language in ("en", "es") else user.preferred_language
    lang = lang if lang in ("en", "es") else "en"
    keys = ({g.entitlement_key for g in live_grants(session, user.id, now)}
            if user.status == "active" else set())
    sections = session.scalars(select(HomeSection).where(HomeSection.entitlement_key.in_(keys))
                               .order_by(HomeSection.position, HomeSection.key))
    return {"user_id": user.id, "language": lang,
            "sections": [{"key": s.key, "title": s.title_es if lang == "es" else s.title_en,
                          "url": s.url_path, "entitlement": s.entitlement_key}
                         for s in sections]}


def catalog(session: Session) -> list[Entitlement]:
    return list(session.scalars(select(Entitlement).order_by(Entitlement.key)))
