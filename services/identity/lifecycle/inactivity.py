"""Inactivity: no login for ``INACTIVITY_DAYS`` (or the company's shorter period) makes
the user ID inactive, at login and by the periodic sweep (``iamctl sweep-inactive``).

The period counts from the latest of last login, account creation and help-desk
reactivation. ``INACTIVITY_WARNING_DAYS`` before the end the sweep sends one warning per
period (``inactivity_warned_at`` later than the period's start means: already warned).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.identity.models import User, UserStatus

from .config import LifecycleConfig
from .domain import SYSTEM, Actor, person, publish, record, security_of, transition
from .models import CompanyPolicy, UserSecurity


def period_days(session: Session, cfg: LifecycleConfig, company_id: str | None) -> int:
    """The company's own period when it set one (never longer than the default)."""
    if company_id:
        days = session.scalar(select(CompanyPolicy.inactivity_days).where(
            CompanyPolicy.company_id == company_id))
        if days:
            return min(days, cfg.inactivity_days)
    return cfg.inactivity_days


def active_since(user: User, sec: UserSecurity | None) -> datetime:
    moments = [user.last_login_at, user.created_at,
               sec.reactivated_at if sec else None]
    return max(m for m in moments if m is not None)


def deadline(session: Session, cfg: LifecycleConfig, user: User,
             sec: UserSecurity | None) -> datetime:
    return active_since(user, sec) + timedelta(days=period_days(session, cfg, user.company_id))


def deactivate(session: Session, cfg: LifecycleConfig, user: User, actor: Actor = SYSTEM) -> None:
    transition(user, UserStatus.INACTIVE)
    publish(session, cfg, "identity.user.deactivated", user,
            {**person(user), "reason": "inactivity"})
    record(session, cfg, "user.deactivated", actor, user.id, reason="inactivity")


def enforce_at_login(session: Session, cfg: LifecycleConfig, user: User) -> bool:
    """Deactivate an active user whose period has run out; True when it had."""
    sec = session.get(UserSecurity, user.id)
    if user.status == UserStatus.ACTIVE and deadline(session, cfg, user, sec) <= cfg.now():
        deactivate(session, cfg, user)
        return True
    return False


def set_company_period(session: Session, company_id: str, days: int | None) -> None:
    row = session.get(CompanyPolicy, company_id)
    if row is None:
        row = CompanyPolicy(company_id=company_id)
        session.add(row)
    row.inactivity_days = days


@dataclass
class SweepReport:
    deactivated: list[str] = field(default_factory=list)
    warned: list[str] = field(default_factory=list)


def sweep(session: Session, cfg: LifecycleConfig, *, batch_size: int = 500) -> SweepReport:
    """Deactivate every active user past the period; warn those within the warning window."""
    report = SweepReport()
    now = cfg.now()
    after = ""
    while True:
        users = list(session.scalars(select(User).where(
            User.status == UserStatus.ACTIVE, User.id > after).order_by(User.id)
            .limit(batch_size)))
        if not users:
            return report
        for user in users:
            sweep_one(session, cfg, user, now, report)
        after = users[-1].id
        session.flush()


def sweep_one(session: Session, cfg: LifecycleConfig, user: User, now: datetime,
              report: SweepReport) -> None:
    sec = session.get(UserSecurity, user.id)
    ends = deadline(session, cfg, user, sec)
    if ends <= now:
        deactivate(session, cfg, user)
        report.deactivated.append(user.id)
        return
    warn_from = ends - timedelta(days=cfg.inactivity_warning_days)
    warned = sec.inactivity_warned_at if sec else None
    if now >= warn_from and (warned is None or warned < active_since(user, sec)):
        sec = sec or security_of(session, user.id)
        sec.inactivity_warned_at = now
        days_left = max(1, (ends - now).days + (1 if (ends - now).seconds else 0))
        publish(session, cfg, "identity.user.inactivity_warning", user,
                {**person(user), "days_left": days_left})
        record(session, cfg, "user.inactivity_warned", SYSTEM, user.id, days_left=days_left)
        report.warned.append(user.id)
