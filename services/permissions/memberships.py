"""Use cases of membership requests (DESIGN.md §6 "Membership is approved").

Enrolling for a company that already has an approved member does not make a person a
member: :mod:`readmodel` records them as a *pending* member (no role, no grants, no
accounts attached, no company view) and calls :func:`request_membership`. The
company's principal administrator, or the help desk, approves or rejects; approval
gives the default role and attaches the accounts the newcomer named (all of them, or
the subset the decider approves). A newcomer never renames the company.

States and transitions: :class:`domain.MembershipState`. Every decision is a
conditional ``UPDATE ... WHERE status = 'pending'``: of concurrent decisions exactly
one wins, the others get 409.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.common.domain_errors import Forbidden, IllegalTransition, Invalid, NotFound

from .cache import note_changed
from .domain import MEMBERSHIP_TRANSITIONS, MembershipState, audit, publish
from .grants import Actor, assign_role
from .models import Company, CompanyAccount, MembershipRequest, User

M = MembershipState
DEFAULT_ROLE = "account_manager"  # what a company's first member gets too (readmodel)
MEMBER, PENDING, REJECTED = "member", "pending", "rejected"  # User.membership


def company_user_ids(session: Session, company_id: str) -> list[str]:
    """Every user of the company in the read model, members or not."""
    return list(session.scalars(select(User.id).where(User.company_id == company_id)))


def has_approved_member(session: Session, company_id: str) -> bool:
    return session.scalar(select(User.id).where(User.company_id == company_id,
                                                User.membership == MEMBER).limit(1)) is not None


def attach_accounts(session: Session, company_id: str, accounts: list[dict[str, Any]]) -> int:
    """Add the accounts the company does not hold yet; bump the cache version of every
    user of the company (their snapshots hold the company's accounts). How many were new."""
    added = 0
    for account in accounts:
        fingerprint, last5 = account.get("fingerprint"), account.get("last5")
        if fingerprint and last5 and session.get(CompanyAccount, (company_id, fingerprint)) is None:
            session.add(CompanyAccount(company_id=company_id, fingerprint=str(fingerprint),
                                       last5=str(last5)))
            added += 1
    if added:
        session.flush()
        note_changed(session, *company_user_ids(session, company_id))
    return added


def _named_accounts(accounts: Any) -> list[dict[str, str]]:
    return [{"last5": str(a["last5"]), "fingerprint": str(a["fingerprint"])}
            for a in accounts or [] if a.get("last5") and a.get("fingerprint")]


def _last5s(accounts: list[dict[str, Any]] | None) -> list[str]:
    return [a["last5"] for a in accounts or []]


def _data(session: Session, req: MembershipRequest) -> dict[str, Any]:
    company = session.get(Company, req.company_id)
    user = session.get(User, req.user_id)
    return {"request_id": req.id, "user_id": req.user_id, "company_id": req.company_id,
            "company_name": company.name if company else "",
            "principal_admin_id": company.principal_user_id if company else None,
            "newcomer_name": " ".join(p for p in (user.given_name, user.family_name) if p)
            if user else "",
            "accounts": _last5s(req.accounts), "status": req.status,
            "decided_by": req.decided_by, "comment": req.comment,
            "expires_at": req.expires_at.isoformat()}


# The event each state is announced by (docs/events.md).
EVENTS = {M.PENDING: "permissions.membership.requested",
          M.APPROVED: "permissions.membership.approved",
          M.REJECTED: "permissions.membership.rejected",
          M.EXPIRED: "permissions.membership.expired"}


def _record(session: Session, req: MembershipRequest, actor_id: str, why: str | None,
            now: datetime, **details: Any) -> None:
    """Audit the request's new state and publish its event (``details`` go in both)."""
    event_type = EVENTS[M(req.status)]
    audit(session, actor_id=actor_id, action=event_type.removeprefix("permissions."),
          target_type="membership_request", target_id=req.id, company_id=req.company_id,
          why=why, now=now, details={"user_id": req.user_id, "status": req.status,
                                     "tracking_number": req.tracking_number, **details})
    publish(session, event_type, {**_data(session, req), **details}, subject=req.user_id,
            company_id=req.company_id, tracking_number=req.tracking_number)


def request_membership(session: Session, *, user: User, accounts: Any, now: datetime,
                       ttl_days: int) -> MembershipRequest:
    """The pending ``user`` asks to join their company. Idempotent: a user has one request."""
    found = session.scalar(select(MembershipRequest)
                           .where(MembershipRequest.user_id == user.id))
    if found is not None:
        return found
    req = MembershipRequest(
        id=str(uuid.uuid4()), tracking_number=tracking_numbers.generate(),
        company_id=user.company_id, user_id=user.id, accounts=_named_accounts(accounts),
        status=M.PENDING.value, created_at=now, expires_at=now + timedelta(days=ttl_days))
    session.add(req)
    session.flush()
    _record(session, req, user.id, None, now)
    return req


def _load(session: Session, request_id: str) -> MembershipRequest:
    req = session.get(MembershipRequest, request_id)
    if req is None:
        raise NotFound("No such membership request.")
    return req


def _is_principal(session: Session, company_id: str, actor: Actor) -> bool:
    company = session.get(Company, company_id)
    principal = session.get(User, actor.id)
    return (company is not None and company.principal_user_id == actor.id
            and principal is not None and principal.status == "active"
            and principal.membership == MEMBER)


def _require_decider(session: Session, req: MembershipRequest, actor: Actor) -> None:
    if not (actor.helpdesk or _is_principal(session, req.company_id, actor)):
        raise Forbidden("Only the principal administrator of the company or the help desk "
                        "may decide a membership request.", kind="not-principal")


def _require_pending(req: MembershipRequest, target: MembershipState, now: datetime) -> None:
    if target not in MEMBERSHIP_TRANSITIONS[MembershipState(req.status)]:
        raise IllegalTransition(f"The membership request is {req.status}; it cannot become "
                                f"{target.value}.")
    if now >= req.expires_at:
        raise IllegalTransition("The membership request has expired.")


def _claim(session: Session, req: MembershipRequest, target: MembershipState,
           actor_id: str, comment: str | None, now: datetime) -> None:
    """Move ``req`` from pending to ``target`` if nobody else did first (one winner; the
    others 409). On PostgreSQL a concurrent decider waits for the winner's commit, then
    finds no pending row."""
    result = session.execute(
        update(MembershipRequest)
        .where(MembershipRequest.id == req.id, MembershipRequest.status == M.PENDING.value)
        .values(status=target.value, decided_by=actor_id, decided_at=now, comment=comment)
        .execution_options(synchronize_session=False))
    if result.rowcount != 1:  # type: ignore[attr-defined]
        raise IllegalTransition("The membership request was decided meanwhile.")
    session.refresh(req)


def _chosen_accounts(req: MembershipRequest, wanted: list[str] | None) -> list[dict[str, str]]:
    """The named accounts the decider approves: each item a last five or a fingerprint of
    one the newcomer named (default: all of them)."""
    named = _named_accounts(req.accounts)
    if wanted is None:
        return named
    chosen: dict[str, dict[str, str]] = {}
    errors: dict[str, list[str]] = {}
    for index, item in enumerate(wanted):
        matches = [a for a in named if item in (a["last5"], a["fingerprint"])]
        if len(matches) == 1:
            chosen[matches[0]["fingerprint"]] = matches[0]
        else:
            errors[f"accounts.{index}"] = [
                "Not an account the newcomer named." if not matches
                else "Several named accounts end so; give the fingerprint."]
    if errors:
        raise Invalid(errors)
    return list(chosen.values())


def approve_membership(session: Session, *, request_id: str, actor: Actor,
                       comment: str | None, now: datetime,
                       accounts: list[str] | None = None) -> MembershipRequest:
    """The newcomer becomes a member with the default role; the approved accounts (default:
    all they named) are attached to the company."""
    req = _load(session, request_id)
    _require_decider(session, req, actor)
    _require_pending(req, M.APPROVED, now)
    chosen = _chosen_accounts(req, accounts)
    _claim(session, req, M.APPROVED, actor.id, comment, now)
    user = session.get(User, req.user_id)
    assert user is not None
    user.membership = MEMBER
    user.updated_at = now
    assign_role(session, user=user, role=DEFAULT_ROLE, actor_id=actor.id, now=now,
                why="membership approved")
    attach_accounts(session, req.company_id, chosen)
    note_changed(session, user.id)
    _record(session, req, actor.id, comment, now, accounts_attached=_last5s(chosen))
    return req


def reject_membership(session: Session, *, request_id: str, actor: Actor,
                      comment: str | None, now: datetime) -> MembershipRequest:
    """The newcomer stays without a role, accounts or company view."""
    req = _load(session, request_id)
    _require_decider(session, req, actor)
    _require_pending(req, M.REJECTED, now)
    _claim(session, req, M.REJECTED, actor.id, comment, now)
    _not_admitted(session, req, now)
    _record(session, req, actor.id, comment, now)
    return req


def _not_admitted(session: Session, req: MembershipRequest, now: datetime) -> None:
    user = session.get(User, req.user_id)
    if user is not None and user.membership != MEMBER:
        user.membership = REJECTED
        user.updated_at = now
        note_changed(session, user.id)


def expire_pending_memberships(session: Session, now: datetime) -> int:
    """Expire pending membership requests past their ``expires_at`` (the newcomer is not
    admitted). How many expired. Run by ``iamctl requests expire``."""
    due = list(session.scalars(select(MembershipRequest)
                               .where(MembershipRequest.status == M.PENDING.value,
                                      MembershipRequest.expires_at <= now)
                               .order_by(MembershipRequest.expires_at)
                               .with_for_update(skip_locked=True)))
    expired = 0
    for req in due:
        try:
            with session.begin_nested():
                _claim(session, req, M.EXPIRED, "system", "expired without a decision", now)
        except IllegalTransition:  # decided meanwhile
            continue
        _not_admitted(session, req, now)
        _record(session, req, "system", "expired without a decision", now)
        expired += 1
    return expired


def get_membership_request(session: Session, *, request_id: str,
                           actor: Actor) -> MembershipRequest:
    """Visible to the newcomer, the company's principal and the help desk."""
    req = _load(session, request_id)
    if not (actor.helpdesk or actor.id == req.user_id
            or _is_principal(session, req.company_id, actor)):
        raise NotFound("No such membership request.")
    return req


def list_membership_requests(session: Session, *, actor: Actor,
                             view: str) -> list[MembershipRequest]:
    """``mine``: the caller's own request; ``to_decide``: the open requests of the company
    whose principal the caller is (the help desk: every open request)."""
    query = (select(MembershipRequest).order_by(MembershipRequest.created_at.desc())
             .limit(200))
    if view == "to_decide":
        query = query.where(MembershipRequest.status == M.PENDING.value)
        if not actor.helpdesk:
            companies = (select(Company.id).join(User, User.id == Company.principal_user_id)
                         .where(Company.principal_user_id == actor.id,
                                User.status == "active", User.membership == MEMBER))
            query = query.where(MembershipRequest.company_id.in_(companies))
    else:
        query = query.where(MembershipRequest.user_id == actor.id)
    return list(session.scalars(query))
