"""Use cases on program administrators: the help desk designates or transfers a
company's one principal administrator, adds or removes secondary administrators and
restricts the entitlements a company's program allows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.domain_errors import Forbidden, Invalid, NotFound

from .domain import audit, publish
from .grants import Actor, assign_role, revoke_role
from .models import Company, CompanyAccount, Entitlement, SecondaryAdministrator, User

ADMIN_ROLE = "program_administrator"


def is_administrator(session: Session, company_id: str, user_id: str) -> bool:
    """The company's principal or a secondary administrator, and an approved member."""
    company = session.get(Company, company_id)
    user = session.get(User, user_id)
    if company is None or user is None or user.membership != "member":
        return False
    if company.principal_user_id == user_id:
        return True
    return session.get(SecondaryAdministrator, (company_id, user_id)) is not None


def _company(session: Session, company_id: str) -> Company:
    company = session.get(Company, company_id)
    if company is None:
        raise NotFound("No such company.")
    return company


def _require_supervisor(actor: Actor) -> None:
    if not actor.supervisor:
        raise Forbidden("Only a help-desk supervisor may do this.")


def _active_member(session: Session, company: Company, user_id: str, field: str) -> User:
    user = session.get(User, user_id)
    if user is None or user.company_id != company.id or user.membership != "member":
        # A newcomer awaiting (or refused) membership is in no company view.
        raise Invalid({field: ["Not a user of this company."]})
    if user.status != "active":
        raise Invalid({field: ["The user is not active."]})
    return user


def company_view(session: Session, company_id: str, actor: Actor, *,
                 trusted_client: bool = False) -> dict[str, Any]:
    """The company's administrators and program, for the help desk, the company's
    administrators and a trusted service (read only); NotFound for anyone else."""
    company = _company(session, company_id)
    if not (trusted_client or actor.helpdesk
            or is_administrator(session, company_id, actor.id)):
        raise NotFound("No such company.")
    secondaries = session.scalars(select(SecondaryAdministrator.user_id)
                                  .where(SecondaryAdministrator.company_id == company_id)
                                  .order_by(SecondaryAdministrator.user_id))
    accounts = session.scalars(select(CompanyAccount.last5)
                               .where(CompanyAccount.company_id == company_id)
                               .order_by(CompanyAccount.last5))
    return {"id": company.id, "name": company.name,
            "principal_user_id": company.principal_user_id,
            "secondary_administrators": list(secondaries),
            "allowed_entitlements": company.allowed_entitlements,
            "accounts": [{"last5": last5} for last5 in accounts]}


def designate_principal(session: Session, *, company_id: str, user_id: str, actor: Actor,
                        why: str, now: datetime) -> dict[str, Any]:
    """Make ``user_id`` the company's principal administrator (a transfer if there was one).

    The new principal gets the program administrator role; the old one loses it.
    Idempotent: designating the current principal again changes nothing. Only a help-desk
    supervisor (or an admin client) designates.
    """
    _require_supervisor(actor)
    company = _company(session, company_id)
    user = _active_member(session, company, user_id, "user_id")
    old = company.principal_user_id
    if old == user.id:
        return company_view(session, company_id, actor)
    company.principal_user_id = user.id
    secondary = session.get(SecondaryAdministrator, (company_id, user.id))
    if secondary is not None:
        session.delete(secondary)
    if old is not None:
        revoke_role(session, user_id=old, role=ADMIN_ROLE, actor_id=actor.id, now=now,
                    why="principal transferred")
    assign_role(session, user=user, role=ADMIN_ROLE, actor_id=actor.id, now=now,
                why="designated principal administrator")
    audit(session, actor_id=actor.id, action="principal.changed", target_type="company",
          target_id=company.id, company_id=company.id, why=why, now=now,
          details={"old_principal_id": old, "new_principal_id": user.id})
    publish(session, "permissions.principal.changed",
            {"company_id": company.id, "old_principal_id": old, "new_principal_id": user.id,
             "actor_id": actor.id}, subject=user.id, company_id=company.id)
    session.flush()
    return company_view(session, company_id, actor)


def add_secondary(session: Session, *, company_id: str, user_id: str, actor: Actor, why: str,
                  now: datetime) -> dict[str, Any]:
    """The help desk or the principal adds a secondary administrator (program administrator
    role; a secondary administrator still cannot decide access requests)."""
    company = _company(session, company_id)
    if not (actor.helpdesk or company.principal_user_id == actor.id):
        raise Forbidden("Only the help desk or the principal administrator may do this.")
    user = _active_member(session, company, user_id, "user_id")
    if company.principal_user_id != user.id and session.get(
            SecondaryAdministrator, (company_id, user.id)) is None:
        session.add(SecondaryAdministrator(company_id=company_id, user_id=user.id,
                                           created_at=now))
        assign_role(session, user=user, role=ADMIN_ROLE, actor_id=actor.id, now=now, why=why)
        audit(session, actor_id=actor.id, action="secondary.added", target_type="company",
              target_id=company_id, company_id=company_id, why=why, now=now,
              details={"user_id": user.id})
    session.flush()
    return company_view(session, company_id, actor)


def remove_secondary(session: Session, *, company_id: str, user_id: str, actor: Actor,
                     why: str | None, now: datetime) -> None:
    company = _company(session, company_id)
    if not (actor.helpdesk or company.principal_user_id == actor.id):
        raise Forbidden("Only the help desk or the principal administrator may do this.")
    secondary = session.get(SecondaryAdministrator, (company_id, user_id))
    if secondary is None:
        raise NotFound("No such secondary administrator.")
    session.delete(secondary)
    revoke_role(session, user_id=user_id, role=ADMIN_ROLE, actor_id=actor.id, now=now, why=why)
    audit(session, actor_id=actor.id, action="secondary.removed", target_type="company",
          target_id=company_id, company_id=company_id, why=why, now=now,
          details={"user_id": user_id})


def set_program(session: Session, *, company_id: str, allowed: list[str] | None, actor: Actor,
                why: str, now: datetime) -> dict[str, Any]:
    """Restrict the entitlements the company's program allows (None: the whole catalog).
    Existing grants are kept; only new requests and approvals are checked. Only a
    help-desk supervisor (or an admin client) sets it."""
    _require_supervisor(actor)
    company = _company(session, company_id)
    if allowed is not None:
        known = set(session.scalars(select(Entitlement.key)))
        errors = {f"allowed_entitlements.{i}": [f"Unknown entitlement {k!r}."]
                  for i, k in enumerate(allowed) if k not in known}
        if errors:
            raise Invalid(errors)
        allowed = sorted(set(allowed))
    company.allowed_entitlements = allowed
    audit(session, actor_id=actor.id, action="program.changed", target_type="company",
          target_id=company_id, company_id=company_id, why=why, now=now,
          details={"allowed_entitlements": allowed})
    return company_view(session, company_id, actor)
