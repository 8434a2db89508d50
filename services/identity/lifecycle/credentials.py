"""Setting a new password: the policy (identity's rules and the common-password list),
no repeat of the last ``PASSWORD_HISTORY`` passwords, then everything signed in ends."""

from __future__ import annotations

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.domain_errors import Invalid
from services.identity.enrollment.policy import check_new_password
from services.identity.i18n import _
from services.identity.models import User, UserStatus
from services.identity.passwords import hash_password, verify_password

from .config import LifecycleConfig
from .domain import security_of, transition
from .models import PasswordHistory
from .revocation import sign_out_everywhere


def recent_hashes(session: Session, user: User, count: int) -> list[str]:
    """The current password's hash and the ones before it: ``count`` in all."""
    older = list(session.scalars(select(PasswordHistory.password_hash).where(
        PasswordHistory.user_id == user.id).order_by(PasswordHistory.id.desc())
        .limit(max(0, count - 1))))
    return ([user.password_hash] if user.password_hash else []) + older


def password_problems(session: Session, cfg: LifecycleConfig, user: User,
                      password: str) -> list[str]:
    problems = check_new_password(password, user.username, user.email)
    if not problems and any(verify_password(h, password)
                            for h in recent_hashes(session, user, cfg.password_history)):
        problems.append(_("Choose a password you have not used recently (one of your last "
                          "%(count)s passwords).", count=cfg.password_history))
    return problems


def replace_password(session: Session, cfg: LifecycleConfig, client: redis.Redis,
                     namespace: str, user: User, password: str,
                     keep_sid: str | None = None) -> dict[str, int]:
    """Check and store ``password``; end every other session and refresh token."""
    problems = password_problems(session, cfg, user, password)
    if problems:
        raise Invalid({"password": problems}, detail=_("Choose another password."))
    if user.password_hash:
        session.add(PasswordHistory(user_id=user.id, password_hash=user.password_hash,
                                    created_at=cfg.now()))
    user.password_hash = hash_password(password)
    sec = security_of(session, user.id)
    sec.failed_logins = 0
    sec.locked_until = None
    if user.status == UserStatus.LOCKED:
        transition(user, UserStatus.ACTIVE)
    return sign_out_everywhere(session, client, namespace, user.id, keep_sid)
