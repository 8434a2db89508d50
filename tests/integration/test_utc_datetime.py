"""``UTCDateTime``: every service's time columns read back aware and in UTC, on SQLite as
on PostgreSQL, and the type is the same ``DateTime(timezone=True)`` to the migrations."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import Column, DateTime, Integer, MetaData, Table, insert, select

from services.common.db import Database, UTCDateTime

MADRID_SUMMER = timezone(timedelta(hours=2))


def _table(metadata: MetaData, column_type) -> Table:
    return Table("moments", metadata, Column("id", Integer, primary_key=True),
                 Column("at", column_type, nullable=True))


def test_times_read_back_aware_in_utc(database_url):
    db = Database(database_url("moments"))
    try:
        table = _table(MetaData(), UTCDateTime())
        table.create(db.engine)
        local = datetime(2026, 6, 1, 14, 30, tzinfo=MADRID_SUMMER)
        with db.engine.begin() as conn:
            conn.execute(insert(table), [{"id": 1, "at": local}, {"id": 2, "at": None},
                                         {"id": 3, "at": datetime(2026, 6, 1, 12, 30)}])
            rows = dict(conn.execute(select(table.c.id, table.c.at)).all())
            # A comparison binds through the type too: the same instant in any offset.
            later = conn.execute(select(table.c.id).where(
                table.c.at > datetime(2026, 6, 1, 14, 29, tzinfo=MADRID_SUMMER))).scalars().all()
        assert rows[1] == datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
        assert rows[1].utcoffset() == timedelta(0)
        assert rows[2] is None
        # A naive value is taken as UTC, as every service clock gives UTC.
        assert rows[3] == datetime(2026, 6, 1, 12, 30, tzinfo=UTC)
        assert sorted(later) == [1, 3]
    finally:
        db.dispose()


def test_autogenerate_sees_the_plain_timezone_aware_column(database_url):
    """A migration writes ``sa.DateTime(timezone=True)``; the models declare
    ``UTCDateTime()``. Autogenerate (type comparison on) must see no change."""
    db = Database(database_url("moments"))
    try:
        _table(MetaData(), DateTime(timezone=True)).create(db.engine)
        with db.engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, _table(MetaData(), UTCDateTime()).metadata) == []
            if db.engine.dialect.name == "postgresql":
                # The comparison is live: a column without time zone would be reported.
                diff = compare_metadata(context, _table(MetaData(), DateTime()).metadata)
                assert [change[0][0] for change in diff] == ["modify_type"]
    finally:
        db.dispose()
