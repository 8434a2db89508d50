"""``DriverStatement`` runs a Core statement on a connection of the database's autocommit
engine: it must commit, process bind values as the column types do, raise SQLAlchemy's
errors, leave the main engine's transactions alone, discard a connection the server cut,
and hold connections only once used and until the database is disposed."""

from __future__ import annotations

import enum
import logging
import time
import uuid

import pytest
import sqlalchemy.exc
from sqlalchemy import (
    Column,
    Enum,
    Integer,
    MetaData,
    String,
    Table,
    bindparam,
    func,
    insert,
    select,
    text,
)

from services.common.db import Database, DriverStatement


class Colour(enum.Enum):  # not a str: psycopg cannot send it without the column's processor
    RED = "red"
    BLUE = "blue"


PROBES = Table("driver_statement_probes", MetaData(),
               Column("id", Integer, primary_key=True),
               Column("name", String(20), unique=True, nullable=False),
               Column("colour", Enum(Colour, native_enum=False,
                                     values_callable=lambda e: [m.value for m in e])))
ADD_BLUE = DriverStatement(insert(PROBES).values(name=bindparam("name"), colour=Colour.BLUE)
                           .returning(PROBES.c.id, PROBES.c.name, PROBES.c.colour))
BACKEND_PID = DriverStatement(select(func.pg_backend_pid().label("pid")))


@pytest.fixture
def database(database_url):
    url = database_url("probe")
    if not url.startswith("postgres"):
        pytest.skip("DriverStatement is for PostgreSQL (psycopg); needs TEST_DATABASE_URL")
    database = Database(url, pool_size=1)
    PROBES.metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_a_statement_commits_and_returns_its_row_with_bind_values_processed(database):
    row = ADD_BLUE.first(database, {"name": "first"})
    assert (row.name, row.colour) == ("first", "blue")
    with database.read() as session:  # another transaction sees it: it was committed
        assert session.execute(text("SELECT name, colour FROM driver_statement_probes")
                               ).all() == [("first", "blue")]


def test_a_statement_error_is_sqlalchemys_and_the_connection_stays_usable(database):
    ADD_BLUE.first(database, {"name": "twice"})
    with pytest.raises(sqlalchemy.exc.IntegrityError) as raised:
        ADD_BLUE.first(database, {"name": "twice"})
    assert "[parameters" not in str(raised.value)  # values (token digests) stay out of it
    # The main engine's sessions are not in autocommit: a rolled-back write is undone.
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.execute(text("INSERT INTO driver_statement_probes (name) VALUES ('undone')"))
        raise RuntimeError("roll back")
    with database.read() as session:
        assert session.scalar(text("SELECT count(*) FROM driver_statement_probes")) == 1


def test_a_connection_the_server_cut_is_an_operational_error_and_is_replaced(database, caplog):
    pid = BACKEND_PID.first(database, {}).pid
    admin = Database(database.url)
    try:
        with admin.transaction() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
    caplog.set_level(logging.WARNING, logger="sqlalchemy.pool")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        ADD_BLUE.first(database, {"name": "lost"})
    assert ADD_BLUE.first(database, {"name": "after"}).name == "after"
    # Discarded, not handed back to the pool to fail its reset (an ERROR with a traceback).
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]
    assert BACKEND_PID.first(database, {}).pid != pid


def _connections(admin: Database, application_name: str) -> int:
    with admin.read() as session:
        return session.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                   "WHERE application_name = :name"), {"name": application_name})


def test_the_autocommit_connections_open_on_first_use_and_close_with_the_database(database):
    name = f"probe-{uuid.uuid4().hex[:12]}"  # this test's connections, among every test's
    probed = Database(f"{database.url}&application_name={name}", pool_size=1)
    admin = Database(database.url)
    try:
        with probed.read() as session:  # the main engine's one connection
            session.execute(text("SELECT 1"))
        assert _connections(admin, name) == 1
        ADD_BLUE.first(probed, {"name": "opens"})
        assert _connections(admin, name) == 2
        probed.dispose()
        deadline = time.monotonic() + 5  # a closed backend leaves pg_stat_activity shortly after
        while _connections(admin, name) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert _connections(admin, name) == 0
    finally:
        probed.dispose()
        admin.dispose()


def test_an_autocommit_engine_is_refused_for_sqlite(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/x.db")
    with pytest.raises(ValueError, match="PostgreSQL"):
        database.autocommit_engine.connect()
