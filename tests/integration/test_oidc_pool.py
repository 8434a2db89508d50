"""Without ``pool_pre_ping`` a pooled PostgreSQL connection that sat idle is still checked
before use: one the server cut is replaced, not handed to a request."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from services.common import db as db_module
from services.common.db import Database


def test_a_connection_cut_while_idle_is_replaced(database_url, monkeypatch):
    url = database_url("identity")
    if not url.startswith("postgres"):
        pytest.skip("needs PostgreSQL (TEST_DATABASE_URL): SQLite has no server to cut it")
    monkeypatch.delenv("DB_POOL_PRE_PING", raising=False)
    database = Database(url, pool_size=1)
    admin = Database(url)
    try:
        with database.read() as session:
            pid = session.scalar(text("SELECT pg_backend_pid()"))
        with admin.transaction() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
        monkeypatch.setattr(db_module, "IDLE_PING_AFTER", 0.0)
        with database.read() as session:
            assert session.scalar(text("SELECT pg_backend_pid()")) != pid
    finally:
        database.dispose()
        admin.dispose()
