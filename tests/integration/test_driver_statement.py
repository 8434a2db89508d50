"""``DriverStatement`` runs a Core statement on the pooled psycopg connection: it must
commit, process bind values as the column types do, raise SQLAlchemy's errors, and leave
the pooled connection as it found it (or discard it when the server cut it)."""

from __future__ import annotations

import enum
import logging

import pytest
import sqlalchemy.exc
from sqlalchemy import Column, Enum, Integer, MetaData, String, Table, bindparam, insert, text

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
    row = ADD_BLUE.first(database.engine, {"name": "first"})
    assert (row.name, row.colour) == ("first", "blue")
    with database.read() as session:  # another transaction sees it: it was committed
        assert session.execute(text("SELECT name, colour FROM driver_statement_probes")
                               ).all() == [("first", "blue")]


def test_a_statement_error_is_sqlalchemys_and_the_connection_stays_usable(database):
    ADD_BLUE.first(database.engine, {"name": "twice"})
    with pytest.raises(sqlalchemy.exc.IntegrityError) as raised:
        ADD_BLUE.first(database.engine, {"name": "twice"})
    assert "[parameters" not in str(raised.value)  # values (token digests) stay out of it
    # The one pooled connection is back out of autocommit: a rolled-back write is undone.
    with pytest.raises(RuntimeError), database.transaction() as session:
        session.execute(text("INSERT INTO driver_statement_probes (name) VALUES ('undone')"))
        raise RuntimeError("roll back")
    with database.read() as session:
        assert session.scalar(text("SELECT count(*) FROM driver_statement_probes")) == 1


def test_a_connection_the_server_cut_is_an_operational_error_and_is_replaced(database, caplog):
    with database.read() as session:
        pid = session.scalar(text("SELECT pg_backend_pid()"))
    admin = Database(database.url)
    try:
        with admin.transaction() as session:
            session.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    finally:
        admin.dispose()
    caplog.set_level(logging.WARNING, logger="sqlalchemy.pool")
    with pytest.raises(sqlalchemy.exc.OperationalError):
        ADD_BLUE.first(database.engine, {"name": "lost"})
    assert ADD_BLUE.first(database.engine, {"name": "after"}).name == "after"
    # Discarded, not handed back to the pool to fail its reset (an ERROR with a traceback).
    assert not [r for r in caplog.records if r.name.startswith("sqlalchemy.pool")]
    with database.read() as session:
        assert session.scalar(text("SELECT pg_backend_pid()")) != pid
