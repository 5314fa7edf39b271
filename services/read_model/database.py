"""Engines for the read model (SQLite or PostgreSQL) and bringing a database to the current schema.

Alembic's files live inside this package (`read_model/alembic.ini`, `read_model/migrations/`),
so `upgrade_schema` works from an installed wheel too.
"""

from __future__ import annotations

import asyncio
import contextlib
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from read_model.unit_of_work import IMMEDIATE, UnitOfWork

PACKAGE_DIR = Path(__file__).resolve().parent
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    """Whether a database URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def _prepare_sqlite_file(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).parent.mkdir(parents=True, exist_ok=True)


def _sqlite_hooks(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # take transaction control away from the driver so BEGIN is ours (a UnitOfWork's
        # transaction begins IMMEDIATE: see read_model.unit_of_work)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: ConnectionPoolEntry, _exc: Any) -> None:
        _release_sqlite_locks(dbapi_connection)


def _release_sqlite_locks(dbapi_connection: Any) -> None:
    """Roll back a SQLite connection that SQLAlchemy is about to close without a rollback.

    A task cancelled inside a statement (a registry stopping mid-batch, a request cut short)
    gets its connection invalidated: SQLAlchemy closes it as is. If a cursor still had rows
    pending, `sqlite3` cannot finalize that statement, so the close leaves a "zombie"
    connection that keeps its transaction, and with it the database's write lock, until the
    garbage collector happens to free the cursor: minutes, in a busy process. Every other
    writer meanwhile waits out `busy_timeout` and fails with "database is locked". A ROLLBACK
    first releases the lock at once; it is queued on the connection's thread ahead of the
    close, so it runs even if this task is cancelled again while waiting for it.
    """
    with contextlib.suppress(Exception):  # already broken, or outside a greenlet (gc)
        dbapi_connection.rollback()


def make_engine(
    url: str, *, pool_size: int = 5, echo: bool = False, listing: bool = False
) -> AsyncEngine:
    """An async engine: SQLite with WAL, busy timeout and foreign keys; PostgreSQL via asyncpg.

    `listing` tunes a PostgreSQL engine for the admin API's list queries (`_plan_each_query`).
    """
    if is_sqlite(url):
        _prepare_sqlite_file(url)
        engine = create_async_engine(url, echo=echo, connect_args={"timeout": 30})
        _sqlite_hooks(engine)
        return engine
    parsed = make_url(url)
    if parsed.drivername in {"postgresql", "postgres"}:
        parsed = parsed.set(drivername="postgresql+asyncpg")
    engine = create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        pool_recycle=1800,
        connect_args={"server_settings": {"application_name": "session-registry"}},
    )
    if listing:
        _plan_each_query(engine)
    return engine


STATEMENT_TIMEOUT = "15s"


def _plan_each_query(engine: AsyncEngine) -> None:
    """Plan every query for its own values, and bound it by `STATEMENT_TIMEOUT`.

    A generic plan cannot know a search pattern or how broad a filter is, and would pick the
    wrong index for the rest of the connection's life; planning costs well under a millisecond.
    """

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        cursor = dbapi_connection.cursor()
        cursor.execute("SET plan_cache_mode = force_custom_plan")
        cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
        cursor.execute("SET application_name = 'session-admin-api'")
        cursor.close()


def alembic_config(url: str | None = None) -> Config:
    """The package's Alembic configuration, optionally pointed at a database URL."""
    config = Config(str(PACKAGE_DIR / "alembic.ini"))
    config.set_main_option("script_location", str(PACKAGE_DIR / "migrations"))
    if url is not None:
        config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection, revision: str) -> None:
    config = alembic_config()
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


BASE_REVISION = "0001"
"""The read model's tables without the later secondary (listing) indexes: a bulk load target."""


def _current(connection: Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


async def schema_of(url: str) -> str | None:
    """The schema revision of the database at `url`; None when it has none (nothing created)."""
    if is_sqlite(url):
        database = make_url(url).database
        if (
            database
            and database != ":memory:"
            and not await asyncio.to_thread(Path(database).exists)
        ):
            return None
    engine = make_engine(url)
    try:
        return await current_revision(engine)
    finally:
        await engine.dispose()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The database's Alembic revision (None for an empty database)."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current)


async def upgrade_schema(url_or_engine: str | AsyncEngine, revision: str = "head") -> None:
    """Bring a database to the current schema (Alembic migrations, on SQLite and PostgreSQL)."""
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    try:
        async with UnitOfWork(engine) as uow:
            await uow.conn.run_sync(_upgrade, revision)
    finally:
        if isinstance(url_or_engine, str):
            await engine.dispose()
