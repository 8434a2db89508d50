"""Use cases on platform roles: help-desk agent and supervisor, platform administrator,
auditor (``services.common.powers.PLATFORM_ROLES``).

They are never company entitlements: not in the catalog, not requestable, not in any
company's program. Only a platform administrator grants or revokes them, always with a
reason, audited and published; the operator's ``iamctl platform`` does the same as the
actor ``operator`` (the bootstrap of the first platform administrator). A platform
administrator cannot grant a role to themself: a second person must.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.common.domain_errors import Conflict, Forbidden, Invalid, NotFound
from services.common.events import insert_ignoring_conflicts
from services.common.powers import PLATFORM_ROLES

from .cache import note_changed
from .domain import audit, publish
from .grants import Actor
from .models import PlatformRole, User

OPERATOR = "operator"


def _require_platform_admin(actor: Actor) -> None:
    if not actor.platform_admin:
        raise Forbidden("Only a platform administrator may grant or revoke platform roles.")


def _known_role(role: str) -> None:
    if role not in PLATFORM_ROLES:
        raise Invalid({"role": [f"Unknown platform role; one of {', '.join(PLATFORM_ROLES)}."]})


def role_view(row: PlatformRole) -> dict[str, Any]:
    return {"user_id": row.user_id, "role": row.role, "granted_by": row.granted_by,
            "why": row.why, "granted_at": row.granted_at}


def list_platform_roles(session: Session, *, actor: Actor,
                        user_id: str | None = None) -> list[dict[str, Any]]:
    """Who holds which platform role (platform administrators and the help desk may look)."""
    if not (actor.platform_admin or actor.helpdesk):
        raise Forbidden("Only a platform administrator or the help desk may list platform roles.")
    query = select(PlatformRole).order_by(PlatformRole.user_id, PlatformRole.role)
    if user_id is not None:
        query = query.where(PlatformRole.user_id == user_id)
    return [role_view(r) for r in session.scalars(query)]


def grant_platform_role(session: Session, *, user_id: str, role: str, actor: Actor, why: str,
                        now: datetime) -> dict[str, Any]:
    """A platform administrator gives ``user_id`` the platform role ``role``. Idempotent:
    granting a role held already changes nothing and records nothing."""
    _require_platform_admin(actor)
    _known_role(role)
    if user_id == actor.id:
        raise Forbidden("A platform administrator cannot grant a platform role to themself.")
    user = session.get(User, user_id)
    if user is None:
        raise Invalid({"user_id": ["No such user."]})
    if user.status != "active":
        raise Conflict("The user is not active.", kind="user-inactive")
    return _grant(session, user_id=user_id, role=role, actor_id=actor.id, why=why, now=now)


def operator_grants_platform_role(session: Session, *, user_id: str, role: str, why: str,
                                  now: datetime) -> dict[str, Any]:
    """The operator's bootstrap (``iamctl platform grant``): no read-model user needed yet,
    since identity's activation event may still be on its way."""
    _known_role(role)
    return _grant(session, user_id=user_id, role=role, actor_id=OPERATOR, why=why, now=now)


def _grant(session: Session, *, user_id: str, role: str, actor_id: str, why: str,
           now: datetime) -> dict[str, Any]:
    """Insert the role unless it is held: of grants sent together exactly one inserts and
    records it; the others wait for it (PostgreSQL) and answer the held role."""
    inserted = session.execute(
        insert_ignoring_conflicts(session, PlatformRole)
        .values(user_id=user_id, role=role, granted_by=actor_id, why=why, granted_at=now)
        .returning(PlatformRole.user_id)).first()
    if inserted is not None:
        _record(session, "granted", user_id=user_id, role=role, actor_id=actor_id, why=why,
                now=now)
    held = session.get(PlatformRole, (user_id, role), populate_existing=True)
    assert held is not None
    return role_view(held)


def revoke_platform_role(session: Session, *, user_id: str, role: str, actor: Actor | None,
                         why: str, now: datetime) -> None:
    """A platform administrator (or, with ``actor=None``, the operator) takes the role away;
    it is refused on the holder's next request at every service."""
    if actor is not None:
        _require_platform_admin(actor)
    _known_role(role)
    # One conditional DELETE: of revocations sent together exactly one removes the row.
    removed = session.execute(delete(PlatformRole).where(
        PlatformRole.user_id == user_id, PlatformRole.role == role)).rowcount  # type: ignore[attr-defined]
    if removed != 1:
        raise NotFound("The user does not hold this platform role.")
    actor_id = actor.id if actor is not None else OPERATOR
    _record(session, "revoked", user_id=user_id, role=role, actor_id=actor_id, why=why, now=now)


def _record(session: Session, verb: str, *, user_id: str, role: str, actor_id: str, why: str,
            now: datetime) -> None:
    """Audit and publish a grant or revocation; the holder's next check sees it."""
    audit(session, actor_id=actor_id, action=f"platform_role.{verb}", target_type="user",
          target_id=user_id, why=why, now=now, details={"role": role})
    publish(session, f"permissions.platform_role.{verb}",
            {"user_id": user_id, "role": role, "actor_id": actor_id}, subject=user_id)
    note_changed(session, user_id)
