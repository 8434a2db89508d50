"""The single-use secret contract (services/common/single_use.py) on the real database:
issuing voids the subject's outstanding secrets, a secret is claimed once, an expired
one is neither live nor claimable, and a claim that comes second loses."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.common import single_use
from services.common.db import Database
from tests.integration.helpers.single_use import Pass, passes_database

T0 = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def db(database_url) -> Iterator[Database]:
    with passes_database(database_url) as database:
        yield database


def _issue(db: Database, holder: str, digest: str, now: datetime = T0,
           ttl: timedelta = HOUR) -> int:
    with db.transaction() as session:
        secret = single_use.issue(session, Pass(holder=holder, digest=digest,
                                                expires_at=now + ttl), now)
        session.flush()
        return secret.id


def _row(db: Database, secret_id: int) -> Pass:
    """The row as committed now, detached (still readable after the session ends)."""
    with db.read() as session:
        secret = session.get(Pass, secret_id)
        assert secret is not None
        session.expunge(secret)
        return secret


def test_issuing_voids_the_outstanding_secrets_of_the_same_subject_only(db):
    used = _issue(db, "ana", "a0")
    with db.transaction() as session:
        assert single_use.claim(session, session.get(Pass, used), T0)
    first = _issue(db, "ana", "a1")
    other = _issue(db, "ben", "b1")
    later = T0 + timedelta(minutes=5)
    second = _issue(db, "ana", "a2", now=later)

    assert _row(db, first).voided_at == later
    assert _row(db, first).used_at is None
    assert _row(db, used).voided_at is None and _row(db, used).used_at == T0
    assert _row(db, other).voided_at is None
    fresh = _row(db, second)
    assert fresh.issued_at == later and fresh.is_live(later)
    with db.read() as session:
        assert single_use.live(session, Pass, "a1", later) is None
        assert single_use.live(session, Pass, "a2", later).id == second
        assert single_use.latest_live(session, Pass, "ana", later).id == second
        assert single_use.latest_live(session, Pass, "ben", later).id == other


def test_a_secret_is_claimed_once(db):
    secret_id = _issue(db, "ana", "a1")
    now = T0 + timedelta(minutes=1)
    with db.transaction() as session:
        secret = single_use.live(session, Pass, "a1", now)
        assert single_use.claim(session, secret, now)
        assert secret.used_at == now
        assert not single_use.claim(session, secret, now)
    with db.transaction() as session:
        assert single_use.live(session, Pass, "a1", now) is None
        assert single_use.unspent(session, Pass, "a1") is None
        assert not single_use.claim(session, session.get(Pass, secret_id), now)
        assert not single_use.void(session, session.get(Pass, secret_id), now)
    assert _row(db, secret_id).used_at == now
    assert _row(db, secret_id).voided_at is None


def test_an_expired_secret_is_unspent_but_neither_live_nor_claimable(db):
    secret_id = _issue(db, "ana", "a1")
    expiry = T0 + HOUR
    with db.transaction() as session:
        assert single_use.live(session, Pass, "a1", expiry) is None
        assert single_use.latest_live(session, Pass, "ana", expiry) is None
        secret = single_use.unspent(session, Pass, "a1")
        assert secret is not None and not secret.is_live(expiry)
        assert not single_use.claim(session, secret, expiry)
        assert secret.used_at is None
    assert _row(db, secret_id).used_at is None


def test_a_voided_secret_cannot_be_claimed(db):
    secret_id = _issue(db, "ana", "a1")
    with db.transaction() as session:
        secret = session.get(Pass, secret_id)
        assert single_use.void(session, secret, T0)
        assert secret.voided_at == T0
        assert not single_use.void(session, secret, T0)
        assert not single_use.claim(session, secret, T0)
        assert secret.used_at is None
    assert _row(db, secret_id).used_at is None


def test_a_claim_judged_on_a_stale_row_loses_to_the_committed_one(db):
    """The second request saw the secret live before the first one's claim committed: its
    own claim matches nothing, and its copy of the row is not marked used."""
    secret_id = _issue(db, "ana", "a1")
    first_at, second_at = T0 + timedelta(minutes=1), T0 + timedelta(minutes=2)
    stale = _row(db, secret_id)
    assert stale.is_live(second_at)
    with db.transaction() as session:
        assert single_use.claim(session, session.get(Pass, secret_id), first_at)
    with db.transaction() as session:
        second = session.merge(stale, load=False)
        assert not single_use.claim(session, second, second_at)
        assert second.used_at is None
    assert _row(db, secret_id).used_at == first_at
