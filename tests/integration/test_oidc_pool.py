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


def test_a_service_keeps_db_pool_size_connections_open_for_reuse(make_app):
    """A gunicorn worker with more threads than pooled connections opened and closed a
    connection per request at full load; DB_POOL_SIZE sizes the pool."""
    engine = make_app("permissions", db_pool_size=8).extensions["portico"].db.engine
    held = [engine.connect() for _ in range(8)]
    opened = [connection.connection.dbapi_connection for connection in held]
    for connection in held:
        connection.close()
    again = [engine.connect() for _ in range(8)]
    try:
        reused = [connection.connection.dbapi_connection for connection in again]
        assert all(any(mine is theirs for theirs in opened) for mine in reused)
    finally:
        for connection in again:
            connection.close()
