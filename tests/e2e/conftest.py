"""Fixtures of the end-to-end tests: the suite as real processes (tests/e2e/launcher.py)
on this test's databases (PostgreSQL schemas with TEST_DATABASE_URL, else SQLite files)
and this test's Redis namespace."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.launcher import SERVICES, Suite


@pytest.fixture
def start_suite(tmp_path, database_url, redis_url, namespace) -> Iterator[Callable[..., Suite]]:
    """``start_suite(**env)`` → the whole suite started and healthy; stopped afterwards."""
    started: list[Suite] = []

    def start(**extra_env: str) -> Suite:
        suite = Suite(tmp_path / f"suite{len(started)}",
                      databases={s: database_url(s) for s in SERVICES},
                      redis_url=redis_url, namespace=namespace, extra_env=extra_env)
        started.append(suite)
        return suite.start()

    yield start
    for suite in started:
        suite.stop()
