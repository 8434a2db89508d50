"""Use cases of access requests (DESIGN.md §6).

A user asks for entitlements for themself, or an administrator of the company asks on
a user's behalf. Only the principal administrator of the target user's company may
approve or reject; a request the principal makes for themself must first be
co-signed by the help desk. States and transitions: :class:`domain.RequestState`.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from services.common import tracking_numbers
from services.common.domain_errors import Conflict, Forbidden, IllegalTransition, Invalid, NotFound

from .admins import is_administrator
from .domain import OPEN_STATES, RequestState, audit, publish, transition
from .grants import Actor, grant_entitlement
from .models import AccessRequest, Company, CompanyAccount, Entitlement, User
from .step_up import APPROVE, require_level


def _created_data(req: AccessRequest, principal_id: str | None) -> dict[str, Any]:
    return {"request_id": req.id, "requester_id": req.requester_id,
            "target_user_id": req.target_user_id, "entitlements": list(req.entitlements),
            "justification": req.justification, "principal_admin_id": principal_id,
            "needs_cosign": req.needs_cosign, "expires_at": req.expires_at.isoformat()}


def _decision_data(req: AccessRequest) -> dict[str, Any]:
    return {"request_id": req.id, "requester_id": req.requester_id,
            "target_user_id": req.target_user_id, "entitlements": list(req.entitlements),
            "decided_by": req.decided_by, "comment": req.comment}


def _publish(session: Session, req: AccessRequest, event_type: str, data: dict[str, Any]) -> None:
    publish(session, event_type, data, subject=req.target_user_id, company_id=req.company_id,
            tracking_number=req.tracking_number)


def _audit(session: Session, req: AccessRequest, actor_id: str, action: str,
           why: str | None, now: datetime) -> None:
    audit(session, actor_id=actor_id, action=action, target_type="access_request",
          target_id=req.id, company_id=req.company_id, why=why, now=now,
          details={"status": req.status, "tracking_number": req.tracking_number})


def _check_entitlements(session: Session, company: Company, keys: list[str],
                        errors: dict[str, list[str]]) -> dict[str, Entitlement]:
    catalog = {e.key: e for e in session.scalars(select(Entitlement))}
    allowed = company.allowed_entitlements
    for index, key in enumerate(keys):
        if key not in catalog:
            errors.setdefault(f"entitlements.{index}", []).append(
                f"Unknown entitlement {key!r}.")
        elif allowed is not None and key not in allowed:
            errors.setdefault(f"entitlements.{index}", []).append(
                f"The company's program does not allow {key!r}.")
    return catalog


def _resolve_accounts(session: Session, company_id: str, wanted: list[str],
                      errors: dict[str, list[str]]) -> list[dict[str, str]]:
    """Each item is a last five or a fingerprint of one of the company's accounts."""
    accounts = list(session.scalars(select(CompanyAccount)
                                    .where(CompanyAccount.company_id == company_id)))
    resolved: dict[str, dict[str, str]] = {}
    for index, item in enumerate(wanted):
        matches = [a for a in accounts if item in (a.last5, a.fingerprint)]
        if not matches:
            errors.setdefault(f"accounts.{index}", []).append("Not an account of the company.")
        elif len(matches) > 1:
            errors.setdefault(f"accounts.{index}", []).append(
                "Several accounts end so; give the fingerprint.")
        else:
            resolved[matches[0].fingerprint] = {"last5": matches[0].last5,
                                                "fingerprint": matches[0].fingerprint}
    return sorted(resolved.values(), key=lambda a: (a["last5"], a["fingerprint"]))


def create_access_request(session: Session, *, actor: Actor, entitlements: list[str],
                          justification: str, now: datetime, ttl_days: int,
                          target_user_id: str | None = None,
                          accounts: list[str] | None = None) -> AccessRequest:
    """Ask for ``entitlements`` for the target user (default: the requester)."""
    requester = session.get(User, actor.id)
    if (requester is None or requester.status != "active" or requester.company_id is None
            or requester.membership != "member"):
        raise Forbidden("Only an active member of a company may request access.")
    target = requester if target_user_id in (None, actor.id) else session.get(User, target_user_id)
    if target is None or target.company_id is None or target.membership != "member":
        raise Invalid({"target_user_id": ["No such user."]})
    if target.id != requester.id and not is_administrator(session, target.company_id, actor.id):
        raise Forbidden("Only an administrator of the user's company may ask on their behalf.")
    errors: dict[str, list[str]] = {}
    if target.status != "active":
        errors["target_user_id"] = ["The user is not active."]
    company = session.get(Company, target.company_id)
    assert company is not None
    keys = list(dict.fromkeys(entitlements))
    catalog = _check_entitlements(session, company, keys, errors)
    limited = None
    if accounts:
        limited = _resolve_accounts(session, company.id, accounts, errors)
        if not any(catalog[k].account_scopable for k in keys if k in catalog):
            errors.setdefault("accounts", []).append(
                "None of the requested entitlements can be limited to accounts.")
    if errors:
        raise Invalid(errors)
    if company.principal_user_id is None:
        raise Conflict("The company has no principal administrator yet; the help desk "
                       "designates one.", kind="no-principal")
    req = AccessRequest(
        id=str(uuid.uuid4()), tracking_number=tracking_numbers.generate(),
        company_id=company.id, requester_id=actor.id, target_user_id=target.id,
        entitlements=keys, accounts=limited, justification=justification,
        status=RequestState.PENDING.value,
        needs_cosign=(actor.id == target.id == company.principal_user_id),
        created_at=now, expires_at=now + timedelta(days=ttl_days))
    session.add(req)
    _audit(session, req, actor.id, "request.created", justification, now)
    _publish(session, req, "permissions.request.created",
             _created_data(req, company.principal_user_id))
    session.flush()
    return req


def _load(session: Session, request_id: str) -> AccessRequest:
    req = session.get(AccessRequest, request_id)
    if req is None:
        raise NotFound("No such access request.")
    return req


def _require_principal(session: Session, req: AccessRequest, actor: Actor) -> None:
    """Only the principal of the target's company decides, whatever else the caller is."""
    company = session.get(Company, req.company_id)
    principal = session.get(User, actor.id)
    if (company is None or company.principal_user_id != actor.id or principal is None
            or principal.status != "active"):
        raise Forbidden("Only the principal administrator of the user's company may decide "
                        "this request.", kind="not-principal")


def _require_open(req: AccessRequest, now: datetime) -> None:
    if req.status in OPEN_STATES and now >= req.expires_at:
        raise IllegalTransition("The request has expired.")


def _move(session: Session, req: AccessRequest, target: RequestState) -> RequestState:
    """Claim the transition ``req.status → target`` in the database: one conditional
    ``UPDATE access_requests SET status = :target WHERE id = :id AND status = :seen``.

    ``:seen`` is the status the caller read and judged (checked against
    :data:`domain.TRANSITIONS` first). Of several transactions deciding one request at
    once, the first to update the row wins; the others wait for its row lock, then match
    no row (PostgreSQL re-reads the row once the winner commits) and get
    :class:`IllegalTransition` (→ 409) before they have written anything else."""
    seen = req.status
    state = transition(seen, target)
    moved = session.execute(
        update(AccessRequest)
        .where(AccessRequest.id == req.id, AccessRequest.status == seen)
        .values(status=state.value)
        .execution_options(synchronize_session=False)).rowcount  # type: ignore[attr-defined]
    if moved != 1:
        session.refresh(req)
        raise IllegalTransition(f"The request is {req.status}; it cannot become "
                                f"{target.value}.")
    set_committed_value(req, "status", state.value)  # written already
    return state


def approve_access_request(session: Session, *, request_id: str, actor: Actor,
                           comment: str | None, now: datetime) -> AccessRequest:
    """Approve and create the grants in the same transaction, once the approval has won
    the request (:func:`_move`): a concurrent decision never leaves grants behind.

    Approving is the ``entitlements.approve`` power: when the catalog requires a level for
    it, a principal whose token shows a lower one is refused (403 ``step-up-required``
    with the ``acr`` to reach) once the request could otherwise be approved."""
    req = _load(session, request_id)
    _require_principal(session, req, actor)
    _require_open(req, now)
    transition(req.status, RequestState.APPROVED)
    if req.needs_cosign and req.status != RequestState.COSIGNED:
        raise Conflict("A request the principal makes for themself needs the help "
                       "desk's co-signature first.", kind="cosign-required")
    require_level(session, APPROVE, actor.acr)
    company = session.get(Company, req.company_id)
    target = session.get(User, req.target_user_id)
    assert company is not None and target is not None
    if target.status != "active":
        raise Conflict("The user is no longer active.", kind="user-inactive")
    errors: dict[str, list[str]] = {}
    catalog = _check_entitlements(session, company, list(req.entitlements), errors)
    if errors:
        raise Invalid(errors, "The company's program no longer allows these entitlements.")
    state = _move(session, req, RequestState.APPROVED)
    for key in req.entitlements:
        limited = req.accounts if (req.accounts and catalog[key].account_scopable) else None
        grant_entitlement(session, user=target, key=key, actor_id=actor.id,
                          source=f"request:{req.id}", now=now, accounts=limited, why=comment)
    _decide(session, req, state, actor.id, comment, now)
    return req


def reject_access_request(session: Session, *, request_id: str, actor: Actor,
                          comment: str | None, now: datetime) -> AccessRequest:
    req = _load(session, request_id)
    _require_principal(session, req, actor)
    _require_open(req, now)
    _decide(session, req, _move(session, req, RequestState.REJECTED), actor.id, comment, now)
    return req


def cancel_access_request(session: Session, *, request_id: str, actor: Actor,
                          comment: str | None, now: datetime) -> AccessRequest:
    req = _load(session, request_id)
    if req.requester_id != actor.id:
        raise Forbidden("Only the requester may cancel a request.")
    _decide(session, req, _move(session, req, RequestState.CANCELLED), actor.id, comment, now)
    return req


def cosign_access_request(session: Session, *, request_id: str, actor: Actor,
                          comment: str | None, now: datetime) -> AccessRequest:
    """The help desk co-signs a principal's request for themself; the principal then decides."""
    req = _load(session, request_id)
    if not actor.helpdesk:
        raise Forbidden("Only the help desk may co-sign.")
    if actor.id == req.requester_id:
        raise Forbidden("The requester cannot co-sign their own request.")
    if not req.needs_cosign:
        raise Conflict("This request needs no co-signature.", kind="cosign-not-needed")
    _require_open(req, now)
    _move(session, req, RequestState.COSIGNED)
    req.cosigned_by = actor.id
    _audit(session, req, actor.id, "request.cosigned", comment, now)
    _publish(session, req, "permissions.request.cosigned",
             {"request_id": req.id, "cosigned_by": actor.id})
    return req


def _decide(session: Session, req: AccessRequest, state: RequestState, actor_id: str,
            comment: str | None, now: datetime) -> None:
    """Record the decision ``state`` that :func:`_move` has claimed."""
    req.decided_by = actor_id
    req.decided_at = now
    req.comment = comment
    _audit(session, req, actor_id, f"request.{state.value}", comment, now)
    _publish(session, req, f"permissions.request.{state.value}", _decision_data(req))


def expire_pending_requests(session: Session, now: datetime,
                            reminder_days: int) -> tuple[int, int]:
    """Expire open requests past their ``expires_at``; remind (once) those that expire
    within ``reminder_days``. Returns (expired, reminded)."""
    expired = reminded = 0
    open_states = [s.value for s in OPEN_STATES]
    due = session.scalars(select(AccessRequest)
                          .where(AccessRequest.status.in_(open_states),
                                 AccessRequest.expires_at <= now)
                          .order_by(AccessRequest.expires_at).with_for_update(skip_locked=True))
    for req in due:
        # Locked by the query (FOR UPDATE), so the conditional update cannot lose.
        _decide(session, req, _move(session, req, RequestState.EXPIRED), "system",
                "expired without a decision", now)
        expired += 1
    soon = session.scalars(select(AccessRequest)
                           .where(AccessRequest.status.in_(open_states),
                                  AccessRequest.reminded_at.is_(None),
                                  AccessRequest.expires_at > now,
                                  AccessRequest.expires_at <= now + timedelta(days=reminder_days))
                           .with_for_update(skip_locked=True))
    for req in soon:
        req.reminded_at = now
        company = session.get(Company, req.company_id)
        _publish(session, req, "permissions.request.reminder",
                 _created_data(req, company.principal_user_id if company else None))
        reminded += 1
    return expired, reminded


def get_access_request(session: Session, *, request_id: str, actor: Actor) -> AccessRequest:
    """Visible to the requester, the target, the company's principal and the help desk."""
    req = _load(session, request_id)
    company = session.get(Company, req.company_id)
    principal = company.principal_user_id if company else None
    if not (actor.helpdesk or actor.id in (req.requester_id, req.target_user_id, principal)):
        raise NotFound("No such access request.")
    return req


def list_access_requests(session: Session, *, actor: Actor, view: str) -> list[AccessRequest]:
    """``mine``: asked by or for the caller; ``to_decide``: open requests the caller, as
    principal, decides; ``to_cosign``: (help desk) open self-requests awaiting a co-signature."""
    query = select(AccessRequest).order_by(AccessRequest.created_at.desc()).limit(200)
    if view == "to_decide":
        companies = select(Company.id).where(Company.principal_user_id == actor.id)
        query = query.where(AccessRequest.company_id.in_(companies),
                            AccessRequest.status.in_([s.value for s in OPEN_STATES]))
    elif view == "to_cosign":
        if not actor.helpdesk:
            raise Forbidden("Only the help desk co-signs.")
        query = query.where(AccessRequest.needs_cosign.is_(True),
                            AccessRequest.status == RequestState.PENDING.value)
    else:
        query = query.where(or_(AccessRequest.requester_id == actor.id,
                                AccessRequest.target_user_id == actor.id))
    return list(session.scalars(query))
