"""Single-use secrets under concurrency (services/common/single_use.py): every request
has seen the secret live before any of them ends it, and still exactly one claim wins,
whether the others claim it too or void it."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest

from services.common import single_use
from services.common.db import Database
from tests.integration.helpers.single_use import Pass, passes_database

pytestmark = pytest.mark.concurrency

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def db(database_url, contenders) -> Iterator[Database]:
    with passes_database(database_url, pool_size=contenders + 5) as database:
        yield database


def _issue(db: Database, round_: int) -> int:
    with db.transaction() as session:
        secret = single_use.issue(session, Pass(holder="ana", digest=f"d{round_}",
                                                expires_at=NOW + timedelta(hours=1)), NOW)
        session.flush()
        return secret.id


def _contest(db: Database, race, contenders: int, secret_id: int,
             end_for: list) -> list[tuple[bool, Pass]]:
    """Each contender loads the secret and sees it live; once all have, each ends it with
    ``end_for[i]`` (claim or void) and commits: (whether it won, its copy of the row)."""
    all_loaded = threading.Barrier(contenders, timeout=30)

    def attempt(i: int) -> tuple[bool, Pass]:
        with db.transaction() as session:
            secret = session.get(Pass, secret_id)
            assert secret is not None and secret.is_live(NOW)
            all_loaded.wait()
            return end_for[i](session, secret, NOW), secret

    return race(contenders, attempt)


def test_claims_sent_together_have_one_winner(db, race, contenders, rounds):
    for round_ in range(rounds):
        secret_id = _issue(db, round_)
        results = _contest(db, race, contenders, secret_id, [single_use.claim] * contenders)
        assert [won for won, _ in results].count(True) == 1, round_
        assert all(copy.used_at is None for won, copy in results if not won)
        with db.read() as session:
            assert session.get(Pass, secret_id).used_at == NOW


def test_claims_and_voids_sent_together_end_the_secret_once(db, race, contenders, rounds):
    ends = [single_use.claim, single_use.void] * (contenders // 2)
    for round_ in range(rounds):
        secret_id = _issue(db, round_)
        results = _contest(db, race, len(ends), secret_id, ends)
        winners = [i for i, (won, _) in enumerate(results) if won]
        assert len(winners) == 1, round_
        with db.read() as session:
            row = session.get(Pass, secret_id)
            used, voided = row.used_at, row.voided_at
        if ends[winners[0]] is single_use.claim:
            assert used == NOW and voided is None
        else:
            assert voided == NOW and used is None
