"""Wrong passwords sent together: every one counts, and the account locks at the
threshold however many arrive at once (DESIGN.md §5.4)."""

from __future__ import annotations

import pytest

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
