"""One SQLAlchemy engine and session factory per service, and Alembic wiring.

Each service owns its database (DESIGN.md §2). A use case runs inside
``db.transaction()``: the rows it changes and the outbox rows it records
commit together or not at all.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import psycopg
from psycopg.rows import namedtuple_row
from sqlalchemy import DateTime, MetaData, TypeDecorator, create_engine, event, text
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from .config import CommonSettings

# Stable constraint names so Alembic migrations are identical on SQLite and PostgreSQL.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> MetaData:
    return MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """A moment in time, stored in UTC and always read back timezone-aware in UTC.

    The column is a plain ``DateTime(timezone=True)`` (migrations and autogenerate see
    no difference), but SQLite keeps no offset: it would store an aware non-UTC time as
    its wall clock and hand back naive datetimes. Binding converts to UTC and reading
    attaches UTC, so no caller has to repair what the database returned. A naive value
    is taken to be UTC already, as every clock in the services is.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            return value.astimezone(UTC)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def make_engine(url: str, *, pool_size: int = 5, echo: bool = False,
                pre_ping: bool = False, autocommit: bool = False) -> Engine:
    """An engine for ``url``. SQLite gets WAL, foreign keys and a busy timeout so that
    several processes (web, worker, relay) can share one file. ``autocommit``: every
    connection in autocommit, never reset (PostgreSQL only; see ``DriverStatement``)."""
    if url.startswith("sqlite"):
        if autocommit:
            raise ValueError("an autocommit engine is for DriverStatement, on PostgreSQL")
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(os.path.dirname(os.path.abspath(path))).mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            echo=echo,
            pool_size=pool_size,
            connect_args={"check_same_thread": False, "timeout": 30},
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection, _record):  # pragma: no cover - trivial
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            # Durable across application crashes in WAL mode; only an OS crash can lose
            # the last commits, and it makes each commit far cheaper.
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - trivial
            # pysqlite's default deferred transactions can deadlock two writers that
            # both start by reading; BEGIN IMMEDIATE takes the write lock up front.
            conn.exec_driver_sql("BEGIN IMMEDIATE")

        # Let SQLAlchemy's "begin" event issue BEGIN itself instead of pysqlite.
        @event.listens_for(engine, "connect")
        def _no_autobegin(dbapi_connection, _record):  # pragma: no cover - trivial
            dbapi_connection.isolation_level = None

        return engine
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    engine = create_engine(
        url,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size * 2,
        pool_pre_ping=pre_ping,
        pool_recycle=1800,
        # Autocommit: no transaction is ever left open, so there is nothing to reset.
        **({"isolation_level": "AUTOCOMMIT", "pool_reset_on_return": None} if autocommit else {}),
    )
    if not pre_ping:
        _ping_after_idle(engine)
    return engine


# Pool liveness trade-off. ``pool_pre_ping`` costs a ``SELECT 1`` round trip on every
# checkout, i.e. on every request. Off by default
# (``DB_POOL_PRE_PING=true`` turns it back on), a connection is pinged only when it sat
# idle in the pool longer than IDLE_PING_AFTER, which is when a server restart, failover or
# idle-killing firewall can have cut it unseen; ``pool_recycle`` retires old connections.
# What is given up: a connection cut while the pool is busy (a database restart under
# load) fails the statement of the request using it; SQLAlchemy then invalidates the whole
# pool, so only requests already in flight fail and the next ones reconnect.
IDLE_PING_AFTER = 10.0


def _ping_after_idle(engine: Engine) -> None:
    @event.listens_for(engine, "checkin")
    def _checked_in(_dbapi_connection, record):
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _checked_out(dbapi_connection, record, _proxy):
        idle_since = record.info.pop("idle_since", None)
        if idle_since is None or time.monotonic() - idle_since < IDLE_PING_AFTER:
            return
        try:
            cursor = dbapi_connection.cursor()
            try:
                cursor.execute("SELECT 1")
            finally:
                cursor.close()
            dbapi_connection.rollback()
        except Exception as exc:
            # The pool discards this connection and checks out (or opens) another.
            raise DisconnectionError("stale pooled connection") from exc


def is_postgresql(conn: Engine | Connection | Session) -> bool:
    """Whether ``conn`` (an engine, a Core connection or an ORM session) talks to PostgreSQL."""
    bind = conn.get_bind() if isinstance(conn, Session) else conn
    return bind.dialect.name == "postgresql"


# The key under which a service database's sessions carry the service's settings.
SETTINGS = "portico.settings"


class Database:
    """A service's engine and session factory.

    ``session_info``: what every session made here carries in ``session.info`` (the
    service's settings under :data:`SETTINGS`, what its use cases reach through a
    session). A key added to it later reaches the sessions made after.
    """

    def __init__(self, url: str, *, pool_size: int = 5, pre_ping: bool = False,
                 session_info: dict[str, Any] | None = None) -> None:
        self.url = url
        self.engine = make_engine(url, pool_size=pool_size, pre_ping=pre_ping)
        self.session_info: dict[str, Any] = dict(session_info or {})
        self.sessions = sessionmaker(self.engine, expire_on_commit=False, info=self.session_info)
        self._pool_size = pool_size
        self._pre_ping = pre_ping
        self._autocommit_engine: Engine | None = None
        self._autocommit_lock = threading.Lock()

    @property
    def autocommit_engine(self) -> Engine:
        """A second engine whose connections are always in autocommit, for
        :class:`DriverStatement`. Its own pool (``pool_size`` too, so a busy worker holds
        up to one more connection per thread), created on first use: a process that runs
        no such statement holds no connection for it."""
        if self._autocommit_engine is None:
            with self._autocommit_lock:
                if self._autocommit_engine is None:
                    self._autocommit_engine = make_engine(self.url, pool_size=self._pool_size,
                                                          pre_ping=self._pre_ping,
                                                          autocommit=True)
        return self._autocommit_engine

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work commits when the block ends and rolls back on an exception."""
        session = self.sessions()
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    @contextlib.contextmanager
    def read(self) -> Iterator[Session]:
        """A session for reading only; nothing it does is committed."""
        session = self.sessions()
        try:
            yield session
        finally:
            session.rollback()
            session.close()

    def ping(self) -> bool:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
            return True
        except Exception:
            return False

    def dispose(self) -> None:
        self.engine.dispose()
        if self._autocommit_engine is not None:
            self._autocommit_engine.dispose()


def service_database(settings: CommonSettings, **session_info: Any) -> Database:
    """The database of the service these settings are of, as its settings say (pool size,
    pre-ping); its sessions carry ``settings`` (:func:`settings_of`) and ``session_info``."""
    return Database(settings.database_url, pool_size=settings.db_pool_size,
                    pre_ping=settings.db_pool_pre_ping,
                    session_info={SETTINGS: settings, **session_info})


def settings_of(session: Session) -> Any:
    """The settings of the service whose :func:`service_database` made ``session``."""
    return session.info[SETTINGS]


def migrations_dir(service: str) -> Path:
    return Path(__file__).resolve().parent.parent / service / "migrations"


def alembic_config(service: str, url: str):
    """An Alembic Config for ``service`` built in code (no alembic.ini needed)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir(service)))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    cfg.attributes["service"] = service
    return cfg


def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Apply ``service``'s migrations to ``url``."""
    from alembic import command

    command.upgrade(alembic_config(service, url), revision)


def run_migrations(context, metadata: MetaData, service: str) -> None:
    """The body of every service's ``migrations/env.py``.

    Each service keeps its own version table so that two services may share one
    PostgreSQL database (as a test may) without clashing.
    """
    url = context.config.get_main_option("sqlalchemy.url")
    version_table = f"alembic_version_{service}"
    if context.is_offline_mode():
        context.configure(url=url, target_metadata=metadata, literal_binds=True,
                          version_table=version_table, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connectable = context.config.attributes.get("connection")
    if connectable is None:
        engine = make_engine(url)
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=metadata,
                              version_table=version_table, render_as_batch=True)
            with context.begin_transaction():
                context.run_migrations()
        engine.dispose()
    else:
        context.configure(connection=connectable, target_metadata=metadata,
                          version_table=version_table, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


class DriverStatement:
    """One Core statement, compiled once per dialect and run on a psycopg connection of
    the database's autocommit engine (:attr:`Database.autocommit_engine`): for a hot
    one-statement write or read on PostgreSQL.

    SQLAlchemy's execution around a cached statement (execution context, result
    wrapping) costs more CPU than the statement and its round trip, and switching a pooled
    connection of the main engine to autocommit and back, with its reset on check-in,
    more again; connections that are always in autocommit need neither. The statement is
    still built with SQLAlchemy; bind values pass through their column types'
    processors; a driver error is raised as SQLAlchemy's, without parameters; a
    connection the server cut is discarded rather than handed back to the pool. Rows are
    named tuples of the driver's values: result processing (an Enum's member, say) is
    the caller's. On SQLite (``make run``, tests) the statement goes through SQLAlchemy
    in a transaction of its own, rows read by attribute all the same.
    """

    def __init__(self, statement: Any) -> None:
        self.statement = statement
        self._prepared: dict[tuple[str, str], tuple[str, dict[str, Any], dict[str, Any]]] = {}

    def _for(self, engine: Engine) -> tuple[str, dict[str, Any], dict[str, Any]]:
        """SQL, fixed values and bind processors for ``engine``'s dialect (compiled once
        it has connected: the dialect knows the server's version from then on)."""
        dialect = engine.dialect
        found = self._prepared.get((dialect.name, dialect.driver))
        if found is None:
            compiled = self.statement.compile(dialect=dialect)
            processors = {name: processor for name, bind in compiled.binds.items()
                          if (processor := bind.type.bind_processor(dialect)) is not None}
            fixed = {name: processors[name](value) if name in processors else value
                     for name, value in compiled.params.items() if value is not None}
            found = self._prepared[(dialect.name, dialect.driver)] = (str(compiled), fixed,
                                                                     processors)
        return found

    def first(self, db: Database, params: dict[str, Any]) -> Any | None:
        """The first row the statement returns with ``params``, or None; committed."""
        return self._execute(db, params, lambda result: result.fetchone())

    def all(self, db: Database, params: dict[str, Any]) -> list[Any]:
        """Every row the statement returns with ``params``; committed."""
        return self._execute(db, params, lambda result: result.fetchall())

    def _execute(self, db: Database, params: dict[str, Any], fetch: Callable[[Any], Any]) -> Any:
        if db.is_sqlite:  # no psycopg: SQLAlchemy's execution, in a transaction of its own
            with db.engine.begin() as connection:
                return fetch(connection.execute(self.statement, params))
        return self._run(db, params, fetch)

    def _run(self, db: Database, params: dict[str, Any],
             fetch: Callable[[psycopg.Cursor[Any]], Any]) -> Any:
        engine = db.autocommit_engine
        pooled = engine.raw_connection()
        try:
            sql, fixed, processors = self._for(engine)
            values = {**fixed, **{name: processors[name](value) if name in processors
                                  else value for name, value in params.items()}}
            driver = cast("psycopg.Connection[Any]", pooled.driver_connection)
            try:
                with driver.cursor(row_factory=namedtuple_row) as cursor:
                    return fetch(cursor.execute(sql, values))
            except psycopg.Error as exc:
                if driver.broken or driver.closed:
                    pooled.invalidate(exc)
                raise DBAPIError.instance(sql, None, exc, psycopg.Error,
                                          hide_parameters=True) from exc
        finally:
            pooled.close()
