"""Use cases of users and login (no Flask here: the CLI, views and workers share them)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.domain_errors import Conflict, Invalid

from .factors import second_step
from .lifecycle import inactivity, login_rules
from .lifecycle.config import LifecycleConfig
from .login_outcome import LoginOutcome, LoginResult
from .models import User, UserStatus
from .passwords import check_password_policy, hash_password, needs_rehash, verify_password


@dataclass(frozen=True)
class NewUser:
    username: str
    password: str
    email: str
    given_name: str
    family_name: str
    company_id: str | None = None
    phone_number: str | None = None
    preferred_language: str = "en"
    email_verified: bool = True


def create_user(session: Session, new: NewUser) -> User:
    """Register a user with a password that meets the policy (CLI and tests until enrollment)."""
    problems = check_password_policy(new.password, new.username, new.email)
    if problems:
        raise Invalid({"password": problems})
    username_key = User.key_for(new.username)
    if session.scalar(select(User.id).where(User.username_key == username_key)):
        raise Conflict("That username is taken.", kind="username-taken")
    user = User(
        username=new.username.strip(), username_key=username_key,
        password_hash=hash_password(new.password), email=new.email.strip(),
        email_verified=new.email_verified, given_name=new.given_name,
        family_name=new.family_name, company_id=new.company_id,
        phone_number=new.phone_number, preferred_language=new.preferred_language,
        status=UserStatus.ACTIVE,
    )
    session.add(user)
    session.flush()
    return user


def authenticate(session: Session, username: str, password: str,
                 rules: LifecycleConfig) -> LoginResult:
    """What signing in with these credentials comes to (see :class:`LoginOutcome`).

    Always runs one argon2 verification, even for an unknown username, so that timing does
    not reveal which usernames exist. The lifecycle ``rules`` (lockout after failed
    attempts, inactivity; DESIGN.md §5.4–5) then decide. What they record (the
    failed-attempt count, a lock, audit rows, events) is in ``session`` whatever the
    outcome: the caller commits it, a refusal's records too.
    """
    user = session.scalar(select(User).where(User.username_key == User.key_for(username)))
    matches = verify_password(user.password_hash if user else None, password)
    outcome = login_rules.judge(session, rules, user, matches)
    if outcome is LoginOutcome.INACTIVE:
        assert user is not None
        return LoginResult(outcome, user, inactivity.period_days(session, rules, user.company_id))
    if outcome is not LoginOutcome.SIGNED_IN:
        return LoginResult(outcome)
    assert user is not None
    if user.password_hash and needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    if second_step.required(session, user.id):
        return LoginResult(LoginOutcome.NEEDS_SECOND_FACTOR, user)
    login_rules.complete_sign_in(session, rules, user)
    return LoginResult(outcome, user)


def get_user(session: Session, user_id: str) -> User | None:
    return session.get(User, user_id)
