"""Use cases of a company's MFA policy: read it, change it (the help desk or the
company's principal administrator, with a why, audited, tracked and published), the
user's "Not now" on the after-sign-in page, and what the policy asks of a signed-in user
now (the rule itself is :mod:`.policy`). No Flask here.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import exists, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.common import tracking_numbers
from services.common.domain_errors import NotFound
from services.common.events import Envelope, record_event
from services.identity import audit
from services.identity.lifecycle.domain import SOURCE, Actor
from services.identity.models import Company, OutboxEvent, User

from . import totp
from .config import FactorsConfig
from .models import MfaPromptSnooze
from .passkey_models import WebauthnCredential
from .policy import (
    OPTIONAL,
    CompanyPolicy,
    Decision,
    Factor,
    MfaPolicy,
    Standing,
    Subject,
    decide,
)

CHANGED = "identity.company.mfa_policy_changed"


def _company(session: Session, company_id: str) -> Company:
    company = session.get(Company, company_id) if company_id else None
    if company is None:
        raise NotFound("No such company.")
    return company


def _policy_of(company: Company) -> CompanyPolicy:
    return CompanyPolicy(MfaPolicy(company.mfa_policy), company.mfa_policy_set_at,
                         company.mfa_grace_days)


def policy_for(session: Session, company_id: str | None) -> CompanyPolicy:
    """The policy of the company a user belongs to (``optional`` for none)."""
    company = session.get(Company, company_id) if company_id else None
    return _policy_of(company) if company is not None else OPTIONAL


def view(session: Session, company_id: str) -> dict[str, Any]:
    """The company's policy as the APIs show it; NotFound for an unknown company."""
    company = _company(session, company_id)
    policy = _policy_of(company)
    binds = (policy.set_at + timedelta(days=policy.grace_days)
             if policy.set_at is not None else None)
    return {"company_id": company.id, "policy": policy.policy.value,
            "grace_days": policy.grace_days, "set_at": policy.set_at,
            "binds_existing_users_at": binds}


def set_policy(session: Session, cfg: FactorsConfig, company_id: str, policy: MfaPolicy,
               grace_days: int, actor: Actor, why: str, *, via: str) -> dict[str, Any]:
    """Set the company's policy and grace period. ``via`` says who decided (``helpdesk``
    or ``principal``). The grace period counts from when the policy last changed: a new
    policy starts it now, the same policy again only changes its length (users created
    since it was set stay bound at once). One audit row (``company.mfa_policy_changed``)
    and one event (``identity.company.mfa_policy_changed``) under a new tracking number;
    returns :func:`view` with that number. NotFound for an unknown company."""
    company = _company(session, company_id)
    previous = company.mfa_policy
    if policy.value != previous or company.mfa_policy_set_at is None:
        company.mfa_policy_set_at = cfg.now()
    company.mfa_policy = policy.value
    company.mfa_grace_days = grace_days
    session.flush()
    shown = view(session, company_id)
    tracking = tracking_numbers.generate()
    detail = {"company_id": company.id, "policy": policy.value, "previous_policy": previous,
              "grace_days": grace_days, "via": via}
    row = audit.record(session, "company.mfa_policy_changed", actor, subject_type="company",
                       subject_id=company.id, tracking_number=tracking,
                       detail={**detail, "why": why})
    row.occurred_at = cfg.now()
    binds = shown["binds_existing_users_at"]
    record_event(session, OutboxEvent, Envelope.new(
        CHANGED, SOURCE, {**detail, "actor_id": actor.id, "why": why,
                          "binds_existing_users_at": binds.isoformat() if binds else None},
        company_id=company.id, tracking_number=tracking, occurred_at=cfg.now()))
    return {**shown, "tracking_number": tracking}


def snooze(session: Session, cfg: FactorsConfig, user_id: str) -> None:
    """The user said "Not now": no prompt for ``cfg.prompt_snooze_days`` (a second "Not
    now" meanwhile, or sent together, moves the same row: ``ON CONFLICT DO UPDATE``)."""
    until = cfg.now() + timedelta(days=cfg.prompt_snooze_days)
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    statement = dialect.insert(MfaPromptSnooze).values(user_id=user_id, snoozed_until=until)
    session.execute(statement.on_conflict_do_update(index_elements=["user_id"],
                                                    set_={"snoozed_until": until}))


def factors_held(session: Session, user_id: str) -> frozenset[Factor]:
    """The kinds of factor the user has now: a confirmed app, a passkey."""
    held = set()
    if totp.confirmed(session, user_id):
        held.add(Factor.TOTP)
    if session.scalar(select(exists().where(WebauthnCredential.user_id == user_id))):
        held.add(Factor.PASSKEY)
    return frozenset(held)


def standing(session: Session, cfg: FactorsConfig, user: User, amr: list[str], *,
             blocking_only: bool = False) -> Decision:
    """What the user's company policy asks of them now, signed in with ``amr``. With
    ``blocking_only`` (``/authorize``), a skippable prompt is not worth the look-ups:
    an optional policy answers NOTHING from the company row alone."""
    company = policy_for(session, user.company_id)
    if company.policy is MfaPolicy.OPTIONAL and (blocking_only or not cfg.prompt_optional):
        return Decision(Standing.NOTHING, policy=company.policy)
    snoozed = session.get(MfaPromptSnooze, user.id)
    subject = Subject(created_at=user.created_at, factors=factors_held(session, user.id),
                      amr=frozenset(amr), snoozed_until=snoozed.snoozed_until if snoozed else None)
    return decide(company, subject, cfg.now())
