"""Second factors under concurrency: one TOTP code sent together is accepted once, and
one recovery code used together is used once."""

from __future__ import annotations

import pyotp
import pytest

from services.identity.factors import recovery_codes, totp
from services.identity.factors.config import config_from
from services.identity.lifecycle.domain import Actor
from services.identity.models import User

pytestmark = pytest.mark.concurrency

ACTOR = Actor("user", "self")


def _factors(identity):
    return config_from(identity.ctx.settings, identity.app.extensions["lifecycle"].config)


def _as(identity, user_id, use_case, *args):
    with identity.db.transaction() as session:
        return use_case(session, _factors(identity), session.get(User, user_id), *args)


def _enrolled(identity, username):
    """A user with a confirmed TOTP factor: the user id, secret and recovery codes."""
    user_id = identity.add_user(username)
    secret = _as(identity, user_id, totp.begin_enrolment).secret
    codes = _as(identity, user_id, totp.confirm, pyotp.TOTP(secret).now(), ACTOR)
    return user_id, secret, codes


def test_one_totp_code_sent_together_is_accepted_once(identity, race, contenders, rounds):
    for round_ in range(rounds):
        user_id, secret, _ = _enrolled(identity, f"otp{round_}")
        with identity.db.transaction() as session:
            # Forget the confirming code's step, so this step's code is fresh.
            session.get(totp.TotpFactor, user_id).last_used_step = 0
        code = pyotp.TOTP(secret).now()
        answers = race(contenders, lambda i, u=user_id, c=code: _as(identity, u, totp.verify, c))
        assert answers.count(True) == 1, (round_, answers)


def test_one_recovery_code_used_together_is_used_once(identity, race, contenders, rounds):
    for round_ in range(rounds):
        user_id, _, codes = _enrolled(identity, f"rc{round_}")
        answers = race(contenders, lambda i, u=user_id, c=codes[0]: _as(
            identity, u, recovery_codes.use, c, ACTOR))
        assert [a for a in answers if a is not None] == [9], (round_, answers)
        assert len([e for e in identity.events("identity.recovery_code.used")
                    if e.subject == user_id]) == 1


def test_wrong_codes_sent_together_are_each_counted_and_block_once(identity, race, contenders,
                                                                   rounds):
    """The cap on wrong codes in a row (SECOND_FACTOR_MAX_FAILURES): wrong codes sent
    together are each counted (the count goes up in SQL), and exactly one of them crosses
    the cap and writes the audit row that marks the block."""
    import dataclasses

    from sqlalchemy import func, select

    from services.identity.lifecycle.models import UserSecurity
    from services.identity.models import AuditEvent

    base = _factors(identity)
    cfg = dataclasses.replace(base, lifecycle=dataclasses.replace(
        base.lifecycle, second_factor_max_failures=2, lockout_threshold=10_000))

    def wrong(user_id):
        with identity.db.transaction() as session:
            return totp.verify(session, cfg, session.get(User, user_id), "000000")

    for round_ in range(rounds):
        user_id, _, _ = _enrolled(identity, f"cap{round_}")
        answers = race(contenders, lambda i, u=user_id: wrong(u))
        assert answers == [False] * contenders, (round_, answers)
        with identity.db.read() as session:
            assert session.get(UserSecurity, user_id).failed_second_factors == contenders
            assert session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "second_factor.codes_blocked",
                AuditEvent.subject_id == user_id)) == 1, round_
