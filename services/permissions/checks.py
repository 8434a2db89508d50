"""Deciding a check: ``may <subject> do <action> on <resource>?``

A decision is made from a user's *snapshot* (status, company, the company's
accounts, live grants) so it needs no database round trip when the snapshot is
cached (see :mod:`cache`). Reasons are stable strings:

``granted``, ``unknown_subject``, ``subject_inactive``, ``membership_pending`` (a
newcomer the company has not approved, or has rejected: no company power at all),
``other_company``, ``unknown_account``, ``not_granted``, ``account_not_granted``,
``step_up_required`` (otherwise granted, but the entitlement requires a stronger
authentication level than the one presented: the decision names it in ``acr``, see
:mod:`step_up`).

An action naming a platform power (``platform.*``, :mod:`services.common.powers`) is
decided from the user's platform roles alone: it takes no resource and no company.
A company entitlement is never granted to a user who belongs to no company.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from services.common.powers import PLATFORM_PREFIX, PLATFORM_ROLES

from .cache import Snapshot
from .models import CompanyAccount, Entitlement, Grant, PlatformRole, User
from .step_up import STEP_UP_REQUIRED, lacks, required_level


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str
    acr: str | None = None  # with step_up_required: the level to reach


def load_snapshots(session: Session, user_ids: Iterable[str], now: datetime) -> dict[str, Snapshot]:
    """The snapshot of each user (``{"s": "unknown"}`` for a user the read model lacks)."""
    ids = list(user_ids)
    snapshots: dict[str, Snapshot] = {u: {"s": "unknown"} for u in ids}
    users = session.execute(select(User.id, User.status, User.company_id, User.membership)
                            .where(User.id.in_(ids))).all()
    if not users:
        return snapshots
    companies = {u.company_id for u in users if u.company_id is not None}
    accounts: dict[str | None, dict[str, str]] = {c: {} for c in companies}
    accounts[None] = {}
    for row in session.execute(select(CompanyAccount.company_id, CompanyAccount.fingerprint,
                                      CompanyAccount.last5)
                               .where(CompanyAccount.company_id.in_(companies))):
        accounts[row.company_id][row.fingerprint] = row.last5
    for user in users:
        snapshots[user.id] = {"s": user.status, "c": user.company_id,
                              "a": accounts[user.company_id], "g": {}, "p": []}
        if user.membership != "member":  # only then: members' snapshots keep their shape
            snapshots[user.id]["m"] = user.membership
    for role in session.execute(select(PlatformRole.user_id, PlatformRole.role)
                                .where(PlatformRole.user_id.in_(ids))):
        if role.user_id in snapshots and "p" in snapshots[role.user_id]:
            powers = snapshots[role.user_id]["p"]
            powers.extend(p for p in PLATFORM_ROLES.get(role.role, ()) if p not in powers)
    grants = session.execute(
        select(Grant.user_id, Grant.entitlement_key, Grant.accounts, Grant.expires_at,
               Entitlement.required_acr)
        .join_from(Grant, Entitlement, Entitlement.key == Grant.entitlement_key, isouter=True)
        .where(Grant.user_id.in_(ids), Grant.revoked_at.is_(None),
               or_(Grant.expires_at.is_(None), Grant.expires_at > now)))
    for grant in grants:
        fps = None if grant.accounts is None else sorted(a["fingerprint"] for a in grant.accounts)
        expires = None if grant.expires_at is None else grant.expires_at.timestamp()
        snapshot = snapshots[grant.user_id]
        snapshot["g"].setdefault(grant.entitlement_key, []).append([fps, expires])
        if grant.required_acr is not None:  # only then: other snapshots keep their shape
            snapshot.setdefault("l", {})[grant.entitlement_key] = grant.required_acr
    return snapshots




def decide_many(snapshots: dict[str, Snapshot], checks: list[dict[str, Any]],
                now: datetime, presented: list[str | None]) -> list[Decision]:
    """:func:`decide` for each of ``checks`` (``subject``, ``action``, ``resource``), in
    order; ``presented[i]`` is the level shown for the subject of ``checks[i]``."""
    stamp = now.timestamp()
    return [_decide_at(snapshots[c["subject"]], c["action"], c.get("resource"), stamp, level)
            for c, level in zip(checks, presented, strict=True)]


def decide(snapshot: Snapshot, action: str, resource: dict[str, Any] | None,
           now: datetime, presented: str | None = None) -> Decision:
    """Allow or deny ``action`` for the snapshot's user on ``resource``, the user having
    shown the authentication level ``presented`` (None: unknown, the lowest).

    A resource naming no account asks whether the user holds the entitlement at all
    (a grant limited to some accounts counts). A resource naming an account needs a
    live grant that is unlimited or lists that account; an account identified only by
    its last five digits must be covered for every company account ending so. What
    would be granted is ``step_up_required`` when the entitlement requires a level above
    ``presented``.
    """
    return _decide_at(snapshot, action, resource, now.timestamp(), presented)


def _decide_at(snapshot: Snapshot, action: str, resource: dict[str, Any] | None,
               stamp: float, presented: str | None) -> Decision:
    decision = _decide(snapshot, action, resource, stamp)
    if decision.allowed:
        needed = required_level(snapshot, action)
        if lacks(presented, needed):
            return Decision(False, STEP_UP_REQUIRED, needed)
    return decision


_UNKNOWN = Decision(False, "unknown_subject")
_INACTIVE = Decision(False, "subject_inactive")
_MEMBERSHIP_PENDING = Decision(False, "membership_pending")
_OTHER_COMPANY = Decision(False, "other_company")
_NOT_GRANTED = Decision(False, "not_granted")
_GRANTED = Decision(True, "granted")
_UNKNOWN_ACCOUNT = Decision(False, "unknown_account")
_ACCOUNT_NOT_GRANTED = Decision(False, "account_not_granted")


def _decide(snapshot: Snapshot, action: str, resource: dict[str, Any] | None,
            stamp: float) -> Decision:
    status = snapshot.get("s")
    if status == "unknown":
        return _UNKNOWN
    if status != "active":
        return _INACTIVE
    if action.startswith(PLATFORM_PREFIX):
        return _GRANTED if action in snapshot.get("p", ()) else _NOT_GRANTED
    if "m" in snapshot:  # not (yet) an approved member of the company
        return _MEMBERSHIP_PENDING
    if snapshot["c"] is None:
        return _NOT_GRANTED
    resource = resource or {}
    company_id = resource.get("company_id")
    if company_id is not None and company_id != snapshot["c"]:
        return _OTHER_COMPANY
    live = [fps for fps, expires in snapshot["g"].get(action, ())
            if expires is None or expires > stamp]
    if not live:
        return _NOT_GRANTED
    wanted = _accounts_named(snapshot["a"], resource)
    if wanted is None:
        return _GRANTED
    if not wanted:
        return _UNKNOWN_ACCOUNT
    for fps in live:
        if fps is None or wanted <= set(fps):
            return _GRANTED
    return _ACCOUNT_NOT_GRANTED


def _accounts_named(accounts: dict[str, str], resource: dict[str, Any]) -> set[str] | None:
    """Fingerprints the resource names (None: it names no account; empty: none of the company's)."""
    fingerprint = resource.get("account_fingerprint")
    last5 = resource.get("account_last5")
    if fingerprint is None and last5 is None:
        return None
    if fingerprint is not None:
        known = fingerprint in accounts and (last5 is None or accounts[fingerprint] == last5)
        return {fingerprint} if known else set()
    return {fp for fp, five in accounts.items() if five == last5}
