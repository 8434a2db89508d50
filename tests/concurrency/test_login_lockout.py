"""Wrong passwords sent together: every one counts, and the account locks at the
threshold however many arrive at once (DESIGN.md §5.4)."""

from __future__ import annotations

from datetime import UTC, timedelta

import pytest

from services.common.events import utcnow
from services.identity.lifecycle.models import UserSecurity
from services.identity.models import User

pytestmark = pytest.mark.concurrency


def test_wrong_passwords_sent_together_lock_the_account(identity, race, contenders, rounds):
    password = identity.password
    threshold = identity.ctx.settings.lockout_threshold
    assert threshold < contenders
    for round_ in range(rounds):
        username = f"ana.{round_}"
        user_id = identity.add_user(username)
        if round_ % 2:  # a user who has missed before: their security row exists already
            assert identity.login_form()[1](username, "wrong-password-0").status_code == 401
        forms = [identity.login_form()[1] for _ in range(contenders)]
        answers = race(contenders, lambda i, username=username, forms=forms: forms[i](
            username, "wrong-password-123"))
        # Every refusal is the same generic answer, none a server error.
        assert [a.status_code for a in answers] == [401] * contenders, round_
        with identity.db.read() as session:
            status = session.get(User, user_id).status.value
            locked_until = session.get(UserSecurity, user_id).locked_until
        assert status == "locked" and locked_until is not None, round_
        locked = [e for e in identity.events("identity.user.locked") if e.subject == user_id]
        assert len(locked) == 1, round_
        # The right password is refused while the lock lasts.
        assert identity.login_form()[1](username, password).status_code == 401


class Clock:
    def __init__(self) -> None:
        self.now = utcnow()

    def __call__(self):
        return self.now


def test_wrong_passwords_sent_together_as_a_lock_runs_out_lock_it_again(identity, race,
                                                                       contenders, rounds):
    """Every request that finds the lock run out used to restart the count: 20 misses
    sent then left the count at 1 and the account open."""
    clock = Clock()
    identity.app.extensions["portico"].clock = clock
    minutes = identity.ctx.settings.lockout_minutes
    for round_ in range(rounds):
        username = f"ana.{round_}"
        user_id = identity.add_user(username)
        for _ in range(identity.ctx.settings.lockout_threshold):
            identity.login_form()[1](username, "wrong-password-0")
        clock.now += timedelta(minutes=minutes, seconds=1)  # the lock has run out
        forms = [identity.login_form()[1] for _ in range(contenders)]
        answers = race(contenders, lambda i, username=username, forms=forms: forms[i](
            username, "wrong-password-123"))
        assert [a.status_code for a in answers] == [401] * contenders, round_
        with identity.db.read() as session:
            status = session.get(User, user_id).status.value
            until = session.get(UserSecurity, user_id).locked_until
        assert status == "locked", round_
        assert until is not None and until.replace(tzinfo=until.tzinfo or UTC) > clock.now
        locked = [e for e in identity.events("identity.user.locked") if e.subject == user_id]
        assert len(locked) == 2, round_
        assert identity.login_form()[1](username, identity.password).status_code == 401
