"""The read model of companies and users, kept from identity's events so that a check
never calls identity. Every function is idempotent: applying the same event twice
leaves the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.common.events import insert_ignoring_conflicts

from . import memberships
from .cache import note_changed
from .grants import assign_role
from .models import Company, User

NEW_USER_ROLE = memberships.DEFAULT_ROLE
STATUS_BY_EVENT = {
    "identity.user.deactivated": "inactive",
    "identity.user.reactivated": "active",
    "identity.user.disabled": "disabled",
}


def user_activated(session: Session, data: dict[str, Any], now: datetime,
                   ttl_days: int = 14) -> User:
    """Create or refresh the user; found their company or ask to join it.

    The first approved member of a company founds it in the read model: the company gets
    the name they typed and the accounts they named, and they get the ``account_manager``
    role so that a new account manager's home page is not empty. Anyone who activates
    for a company that already has an approved member is a *pending* member: no role,
    no accounts, the company's name untouched, and a membership request the company's
    principal administrator or the help desk decides (:mod:`memberships`). Nobody
    becomes principal here: the help desk designates the principal administrator.
    A user seen before (a redelivered event) only has their contact details refreshed.
    """
    if data.get("company_id") is None:
        return _platform_staff_activated(session, data, now)
    company_id = str(data["company_id"])
    user_id = str(data["user_id"])
    user = session.get(User, user_id)
    if user is not None:
        _copy_contact(user, data)
        user.status = "active"
        user.updated_at = now
        note_changed(session, user.id)
        return user
    company = _locked_company(session, company_id, str(data.get("company_name") or ""))
    founder = not memberships.has_approved_member(session, company_id)
    user = User(id=user_id, company_id=company_id,
                membership=memberships.MEMBER if founder else memberships.PENDING)
    session.add(user)
    _copy_contact(user, data)
    user.status = "active"
    user.updated_at = now
    session.flush()
    if founder:
        company.name = company.name or str(data.get("company_name") or "")
        memberships.attach_accounts(session, company_id, data.get("accounts") or [])
        assign_role(session, user=user, role=NEW_USER_ROLE, actor_id="identity", now=now,
                    why="new user")
    else:
        memberships.request_membership(session, user=user, accounts=data.get("accounts"),
                                       now=now, ttl_days=ttl_days)
    note_changed(session, user.id)
    return user


def _platform_staff_activated(session: Session, data: dict[str, Any], now: datetime) -> User:
    """A person of no company (the bootstrap help-desk administrator): no company, no role;
    their powers are platform roles a platform administrator (or the operator) grants."""
    user_id = str(data["user_id"])
    user = session.get(User, user_id)
    if user is None:
        user = User(id=user_id, company_id=None)
        session.add(user)
    _copy_contact(user, data)
    user.status = "active"
    user.updated_at = now
    session.flush()
    note_changed(session, user.id)
    return user


def _locked_company(session: Session, company_id: str, name: str) -> Company:
    """The company's row, created if new, locked until the commit: two first activations
    for one company are decided one after the other, so only one can found it."""
    session.execute(insert_ignoring_conflicts(session, Company)
                    .values(id=company_id, name=name))
    company = session.get(Company, company_id, with_for_update=True, populate_existing=True)
    assert company is not None
    return company


def status_changed(session: Session, event_type: str, data: dict[str, Any],
                   now: datetime) -> User | None:
    user = session.get(User, str(data.get("user_id")))
    if user is None:  # an event about a user activated before this service existed
        return None
    user.status = STATUS_BY_EVENT[event_type]
    user.updated_at = now
    note_changed(session, user.id)
    return user


def contact_changed(session: Session, data: dict[str, Any], now: datetime) -> User | None:
    user = session.get(User, str(data.get("user_id")))
    if user is None:
        return None
    _copy_contact(user, data)
    user.updated_at = now
    return user


def _copy_contact(user: User, data: dict[str, Any]) -> None:
    for field in ("email", "given_name", "family_name"):
        if data.get(field) is not None:
            setattr(user, field, str(data[field]))
    if data.get("preferred_language") in ("en", "es"):
        user.preferred_language = data["preferred_language"]
