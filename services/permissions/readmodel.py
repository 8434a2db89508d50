"""The read model of companies and users, kept from identity's events so that a check
never calls identity. Every function is idempotent: applying the same event twice
leaves the same rows."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from .cache import note_changed
from .grants import assign_role
from .models import Company, CompanyAccount, User

NEW_USER_ROLE = "account_manager"
STATUS_BY_EVENT = {
    "identity.user.deactivated": "inactive",
    "identity.user.reactivated": "active",
    "identity.user.disabled": "disabled",
}


def user_activated(session: Session, data: dict[str, Any], now: datetime) -> User:
    """Create or refresh the user and their company; merge the company's accounts.

    A user seen for the first time gets the ``account_manager`` role so that a new
    account manager's home page is not empty. Nobody becomes principal here: the
    help desk designates the principal administrator.
    """
    if data.get("company_id") is None:
        return _platform_staff_activated(session, data, now)
    company_id = str(data["company_id"])
    company = session.get(Company, company_id)
    if company is None:
        company = Company(id=company_id, name=str(data.get("company_name") or ""))
        session.add(company)
        session.flush()
    elif data.get("company_name"):
        company.name = str(data["company_name"])
    for account in data.get("accounts") or []:
        fingerprint, last5 = account.get("fingerprint"), account.get("last5")
        if fingerprint and last5 and session.get(CompanyAccount, (company_id, fingerprint)) is None:
            session.add(CompanyAccount(company_id=company_id, fingerprint=str(fingerprint),
                                       last5=str(last5)))
    user_id = str(data["user_id"])
    user = session.get(User, user_id)
    is_new = user is None
    if user is None:
        user = User(id=user_id, company_id=company_id)
        session.add(user)
    _copy_contact(user, data)
    user.status = "active"
    user.updated_at = now
    session.flush()
    if is_new:
        assign_role(session, user=user, role=NEW_USER_ROLE, actor_id="identity", now=now,
                    why="new user")
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
