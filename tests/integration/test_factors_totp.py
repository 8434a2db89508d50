"""TOTP and recovery codes as use cases, on the real database: confirm before it counts,
the ±1 step window, a code accepted once, wrong codes toward the lockout, recovery codes
used once, events and audit rows without secrets."""

from __future__ import annotations

import json

import pyotp
import pytest
from sqlalchemy import select

from services.common.domain_errors import Conflict, Invalid
from services.identity.factors import recovery_codes, totp
from services.identity.factors.config import config_from
from services.identity.factors.models import RecoveryCode, TotpFactor
from services.identity.lifecycle.domain import Actor
from services.identity.models import OutboxEvent, User
from tests.integration.helpers.identity import events
from tests.integration.helpers.lifecycle import add_user, audit_rows, user_row

ACTOR = Actor("user", "self")


@pytest.fixture
def app(lifecycle_app):
    return lifecycle_app


@pytest.fixture
def cfg(app):
    return config_from(app.extensions["portico"].settings,
                       app.extensions["lifecycle"].config)


def _run(app, use_case, user_id, *args):
    with app.extensions["portico"].db.transaction() as session:
        return use_case(session, *args[:1], session.get(User, user_id), *args[1:])


def code_at(secret: str, clock, steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(clock().timestamp() + 30 * steps)


def enrolled(app, cfg, clock, user_id):
    """A confirmed TOTP factor: its secret and the recovery codes it brought."""
    enrolment = _run(app, totp.begin_enrolment, user_id, cfg)
    codes = _run(app, totp.confirm, user_id, cfg, code_at(enrolment.secret, clock), ACTOR)
    clock.advance(seconds=60)  # past the confirming code's step and the next
    return enrolment.secret, codes


def test_enrolment_does_not_count_until_confirmed(app, cfg, clock):
    user_id = add_user(app)
    enrolment = _run(app, totp.begin_enrolment, user_id, cfg)
    assert enrolment.provisioning_uri.startswith("otpauth://totp/")
    assert _run(app, totp.verify, user_id, cfg, code_at(enrolment.secret, clock)) is False
    with app.extensions["portico"].db.read() as session:
        assert not totp.confirmed(session, user_id)
        row = session.get(TotpFactor, user_id)
        assert enrolment.secret not in row.secret_encrypted  # encrypted at rest
    with pytest.raises(Invalid):
        _run(app, totp.confirm, user_id, cfg, "000000", ACTOR)
    codes = _run(app, totp.confirm, user_id, cfg, code_at(enrolment.secret, clock), ACTOR)
    assert len(codes) == 10 and len(set(codes)) == 10
    with app.extensions["portico"].db.read() as session:
        assert totp.confirmed(session, user_id)
    with pytest.raises(Conflict):
        _run(app, totp.begin_enrolment, user_id, cfg)
    [added] = events(app, "identity.factor.added")
    assert added.subject == user_id and added.data["factor"] == "totp"
    assert audit_rows(app, "factor.added")[0]["subject_id"] == user_id


def test_window_is_one_step_either_side(app, cfg, clock):
    user_id = add_user(app)
    secret, _ = enrolled(app, cfg, clock, user_id)
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock, -2)) is False
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock, 2)) is False
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock, -1)) is True
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock, 1)) is True


def test_a_code_is_accepted_once_and_earlier_steps_die(app, cfg, clock):
    user_id = add_user(app)
    secret, _ = enrolled(app, cfg, clock, user_id)
    code = code_at(secret, clock)
    assert _run(app, totp.verify, user_id, cfg, code) is True
    assert _run(app, totp.verify, user_id, cfg, code) is False
    # The previous step's code came after a later one was used: refused too.
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock, -1)) is False


def test_wrong_codes_lock_the_account(app, cfg, clock):
    user_id = add_user(app)
    secret, _ = enrolled(app, cfg, clock, user_id)
    for _ in range(5):
        assert _run(app, totp.verify, user_id, cfg, "123456") is False
    assert user_row(app, user_id).status.value == "locked"
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock)) is False
    assert audit_rows(app, "login.failed")[0]["detail"]["reason"] == "bad_second_factor"


def test_recovery_code_works_once_and_tells_the_user(app, cfg, clock):
    user_id = add_user(app)
    _, codes = enrolled(app, cfg, clock, user_id)
    assert _run(app, recovery_codes.use, user_id, cfg, codes[3].upper(), ACTOR) == 9
    assert _run(app, recovery_codes.use, user_id, cfg, codes[3], ACTOR) is None
    assert _run(app, recovery_codes.use, user_id, cfg, "abcde-fghjk", ACTOR) is None
    [used] = events(app, "identity.recovery_code.used")
    assert used.data["remaining"] == 9 and used.data["email"]


def test_regenerating_kills_the_old_codes(app, cfg, clock):
    user_id = add_user(app)
    _, old = enrolled(app, cfg, clock, user_id)
    new = _run(app, recovery_codes.generate, user_id, cfg, ACTOR)
    assert _run(app, recovery_codes.use, user_id, cfg, old[0], ACTOR) is None
    assert _run(app, recovery_codes.use, user_id, cfg, new[0], ACTOR) == 9


def test_removing_the_factor_removes_its_codes(app, cfg, clock):
    user_id = add_user(app)
    secret, _ = enrolled(app, cfg, clock, user_id)
    _run(app, totp.remove, user_id, cfg, ACTOR)
    with app.extensions["portico"].db.read() as session:
        assert not totp.confirmed(session, user_id)
        assert session.scalars(select(RecoveryCode)).all() == []
    [removed] = events(app, "identity.factor.removed")
    assert removed.data["factor"] == "totp"
    assert _run(app, totp.verify, user_id, cfg, code_at(secret, clock)) is False


def test_no_secret_in_events_or_audit_after_enrolment(app, cfg, clock):
    user_id = add_user(app)
    secret, codes = enrolled(app, cfg, clock, user_id)
    _run(app, recovery_codes.use, user_id, cfg, codes[0], ACTOR)
    with app.extensions["portico"].db.read() as session:
        payloads = " ".join(session.scalars(select(OutboxEvent.payload)).all())
    written = payloads + json.dumps(audit_rows(app), default=str)
    assert secret not in written
    assert not any(code in written or recovery_codes.normalised(code) in written
                   for code in codes)
