"""PostgreSQL: the production read model, shared by several registries and admin API workers.

Writers lock the rows they read (`for_update`; the sweeper and the outbox relay skip rows
another process holds), a batch goes to the server as one statement over arrays (`pg_bulk`),
the listed sessions are counted from the trigger-kept `listed_session_counts`, and a text
search reads its matches through the trigram indexes in one pass.
"""

from __future__ import annotations

import contextlib
import functools
import time
from collections.abc import AsyncIterator, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Executable, Result, Table, any_, bindparam, event, text
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect, make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.elements import ClauseElement
from sqlalchemy.util import await_

from read_model import listing_indexes, pg_bulk
from read_model.active import Moment, TenantRef
from read_model.session_counts import kept_counted, rows_counted, types_only
from read_model.session_query import FilterShape
from read_model.store import (
    BUILT_STATEMENTS,
    HistoryRow,
    Key,
    OutboxRow,
    Query,
    RevocationRow,
    SessionRow,
    Store,
    Value,
    in_transaction,
    session_row,
)
from session_contracts.models import SessionFilter

MIGRATION_LOCK_KEY = 0x5E55_C0DE_0001
"""The advisory lock `upgrade_schema` holds (a constant of this application's own)."""
STATEMENT_TIMEOUT = "15s"
"""The most any statement of the admin API may take (its connections' `statement_timeout`),
but an exact count's (`EXACT_COUNT_TIMEOUT`)."""
EXACT_COUNT_TIMEOUT = "60s"
"""The most an exact count may take (`count=exact`, and the count "Terminate all matching"
confirms): every match of a broad term is read, 9-24 s for a last name in a tenant of four
million on this machine when its pages are not cached, which `STATEMENT_TIMEOUT` would cut."""
ALIVE_BYPASS = 0.5
"""Seconds after its return to the pool during which a connection is handed out untested
(`_ping_on_checkout`)."""
_RETURNED_AT = "session_control_returned_at"
_IDENTITY = text(
    "SELECT pg_postmaster_start_time(), current_setting('port'), d.oid"
    " FROM pg_database d WHERE d.datname = current_database()"
)
"""What names one database of one server whatever the URL that reached it (`identity`)."""


_SEARCH = {
    "enable_indexscan": "off",
    "enable_bitmapscan": "on",
    "jit": "off",
    "plan_cache_mode": "force_custom_plan",
    "statement_timeout": EXACT_COUNT_TIMEOUT,
}
"""The planner for a search step: the matches through the search indexes (bitmaps), never a
sort index walked. Each step sets the switches the other turns off, as steps of one
transaction follow each other (`Store.one_read`). Parallel workers are left as the server
has them: an exact count of a broad term (`count=exact`, its own transaction) reads hundreds
of thousands of rows, where they may help (`q=Mary` at ten million sessions: 520 ms against
740 ms without; `q=Smith` the same either way), and it may take `EXACT_COUNT_TIMEOUT`. A
step of a bounded search, whose reads are all capped, runs without them, within
`STATEMENT_TIMEOUT` (`_CAPPED`)."""
_CAPPED = {
    **_SEARCH,
    "max_parallel_workers_per_gather": "0",
    "statement_timeout": STATEMENT_TIMEOUT,
}
"""`_SEARCH` for a read that stops at a cap (`search(conn, capped=True)`: the steps of a
search's bounded path): no parallel workers. The planner takes a term's
session id keys for 0.5% of the rows (they have no statistics: `listing_indexes`), 50,000 at
ten million sessions, and planned a Gather of two workers for 1,214 matches: 13.7 ms, where
the scan itself took 2.8 (three characters of an id at ten million sessions)."""
_CAPPED_KEYED = {**_CAPPED, "plan_cache_mode": "force_generic_plan"}
"""`_CAPPED` for statements that find their rows through one index whatever their values
(`Store.search(keyed=True)`), planned once per connection: the session id keys of a term
(`session_id_keys(...) @> session_id_term_keys($tenant, $term)`, computed at the scan's
start instead of folded at planning; the pattern tests the rows found), with the buckets of
a window of activity beside them (`session_activity_window($tenant, $first, $last)`, the
same), and the directory's trigram lookup of a selective term (`user_name ILIKE $pattern`,
which pg_trgm extracts at the scan's start). Planning the ids step for its values took
0.7-0.8 ms at ten million sessions (every listing index's predicate proved and costed),
against 0.6-0.8 ms to execute it; the generic plans are the same bitmaps
(`docs/admin-api.md`)."""
_WALK = {
    "enable_indexscan": "on",
    "enable_bitmapscan": "off",
    "jit": "off",
    "max_parallel_workers_per_gather": "0",
    "plan_cache_mode": "force_custom_plan",
    "statement_timeout": STATEMENT_TIMEOUT,
}
"""The planner for a walk: a bitmap would gather every match before the first row; JIT
compiling costs more than the few thousand index entries a walk reads; parallel workers split
a walk that stops at its limit, each reading its own stretch of entries it then drops
(measured at ten million sessions: a rare term's walk 48 ms alone, 63 ms with two workers),
and take cores from the other requests."""


_KEYED = {**_WALK, "plan_cache_mode": "force_generic_plan"}
"""`_WALK` for statements that bind keys only (`Store.walk(keyed=True)`: a tenant, names, ids,
the moment, limits; no pattern, no filter's range), whose plan is the same whatever the
values: planned once per connection (a generic plan) instead of on every execution. Planning
a statement on `sessions` proves the query implies each listing index's partial predicate;
for the per-name merge at ten million sessions that took 1.2 ms, against 0.7 ms to execute
it (`docs/admin-api.md`). Every other step sets `force_custom_plan` back: the statements of
`_SEARCH` and `_WALK` hold patterns, which a generic plan cannot see."""


_PLANNER = "session_control_planner"
"""`conn.info` key: the transaction whose planner switches were last set, and to what."""


class PostgresStore(Store):
    """The read model in a PostgreSQL database (asyncpg).

    `listing` tunes the connections for the admin API's list queries (`_LISTING`);
    `alive_bypass`: seconds after its return during which a pooled connection is handed out
    without a test (`_ping_on_checkout`; default `ALIVE_BYPASS`).
    """

    search_walk = 2000
    search_cap = 2000
    user_name_directory = True

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 5,
        max_overflow: int | None = None,
        echo: bool = False,
        listing: bool = False,
        alive_bypass: float | None = None,
    ) -> None:
        parsed = make_url(url)
        if parsed.drivername in {"postgresql", "postgres"}:
            parsed = parsed.set(drivername="postgresql+asyncpg")
        engine = create_async_engine(
            parsed,
            echo=echo,
            pool_size=pool_size,
            max_overflow=pool_size if max_overflow is None else max_overflow,
            pool_recycle=1800,
            connect_args={"server_settings": _LISTING if listing else _REGISTRY},
        )
        _ping_on_checkout(engine, ALIVE_BYPASS if alive_bypass is None else alive_bypass)
        super().__init__(url, engine)
        self._driver_sql: dict[int, tuple[Executable, DriverSQL | object | None]] = {}

    async def run(
        self, conn: AsyncConnection, statement: Executable, values: Mapping[str, Any]
    ) -> Result[Any]:
        """`statement` as the driver's SQL, compiled once (`DriverSQL`) on its second
        execution: SQLAlchemy keys, compiles (from its cache) and binds a statement on every
        execution, 0.3 ms and more for a search's larger ones, although a statement built once
        is the same every time. Its first execution goes through SQLAlchemy, whose cache
        serves a new statement of a known shape (a filter's values in it: a list filtered by
        each of 256 networks builds 256 statements) for less than compiling it here would
        cost. Through `exec_driver_sql` the connection's events, error translation and
        invalidation are SQLAlchemy's as before. A statement the driver's SQL cannot carry as
        it is (`DriverSQL.of`) is executed as usual."""
        kept = self._driver_sql.get(id(statement))
        if kept is None or kept[0] is not statement:
            if len(self._driver_sql) >= 2 * BUILT_STATEMENTS:
                self._driver_sql.clear()
            # the statement is kept with its SQL: its id is never another's while kept
            self._driver_sql[id(statement)] = (statement, _SEEN_ONCE)
            return await conn.execute(statement, values)
        driver = kept[1]
        if driver is _SEEN_ONCE:
            driver = DriverSQL.of(statement, self.engine.dialect)
            self._driver_sql[id(statement)] = (statement, driver)
        if driver is None:
            return await conn.execute(statement, values)
        assert isinstance(driver, DriverSQL)
        return await conn.exec_driver_sql(driver.sql, driver.arguments(values))

    async def continue_ids(self, conn: AsyncConnection, table: Table) -> None:
        """Move the id column's sequence past the largest id the table holds."""
        await conn.execute(
            text(
                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'),"
                f" coalesce(max(id), 0) + 1, false) FROM {table.name}"
            )
        )

    async def identity(self) -> tuple[object, ...] | None:
        """The server (when it started, its port) and the database's oid: no privilege needed."""
        try:
            async with self.engine.connect() as conn:
                row = (await conn.execute(_IDENTITY)).one()
        except (OSError, DBAPIError):
            return None  # not there (or not reachable): no database to be the same as
        return ("postgresql", *row)

    async def replace_with(self, rebuilt: Store, stamp: str) -> str:
        """Rename the databases: this one to a backup, the rebuilt one to this one's name, in
        one transaction. In autocommit, a second rename refused (anyone connected to the rebuilt
        database) left nothing under the live name: the services could not start (found by a
        review, 2026-12-06); now both are undone together."""
        if not isinstance(rebuilt, PostgresStore):
            raise ValueError("both databases must be on the same backend to swap")
        here, there = await self.identity(), await rebuilt.identity()
        if here is None or there is None or here[:3] != there[:3]:
            # the renames run on this server: another's database of the rebuilt one's name,
            # a stale one from an earlier rebuild, was renamed in (a review, stop 70)
            raise ValueError(
                "the rebuilt database is not on the live database's server: a swap renames "
                "databases on one server"
            )
        live_name = make_url(self.url).database
        rebuilt_name = make_url(rebuilt.url).database
        backup_name = f"{live_name}_{stamp}_bak"
        maintenance = make_url(self.url).set(database="postgres")
        server = PostgresStore(maintenance.render_as_string(hide_password=False))
        try:
            async with server.engine.begin() as conn:
                await conn.execute(text(f'ALTER DATABASE "{live_name}" RENAME TO "{backup_name}"'))
                await conn.execute(text(f'ALTER DATABASE "{rebuilt_name}" RENAME TO "{live_name}"'))
        finally:
            await server.dispose()
        return backup_name

    def insert(self, table: Table) -> postgresql.Insert:
        """PostgreSQL's INSERT (ON CONFLICT DO NOTHING / DO UPDATE)."""
        return postgresql.insert(table)

    def binary_order(self, column: ColumnElement[str]) -> ColumnElement[str]:
        """`column COLLATE "C"`: the database's collation may order `_`, `-` and case otherwise."""
        return column.collate("C")

    def one_of(self, column: ColumnElement[Value], values: Sequence[Value]) -> ColumnElement[bool]:
        """`column = ANY(:array)`: one parameter, however many values (expanding IN would
        render, name and bind one parameter per value)."""
        return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(column.type)))

    async def lock_schema(self, conn: AsyncConnection) -> None:
        """A transaction-level advisory lock, released by the commit or rollback."""
        await conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})

    async def lock_named(self, conn: AsyncConnection, name: str) -> None:
        """A transaction-level advisory lock on the name's 64-bit hash, waited for without the
        connection's `statement_timeout`: the holder is bounded by its own work (a settings
        change by `SESSIONS_PUBLISH_TIMEOUT_SECONDS`, up to 300 s), and the admin API's 15 s
        would answer a wait behind it as a search stopped at its time limit."""
        before = (await conn.execute(text("SELECT current_setting('statement_timeout')"))).scalar()
        await conn.execute(text("SELECT set_config('statement_timeout', '0', true)"))
        await conn.execute(
            text("SELECT pg_advisory_xact_lock(hashtextextended(:name, 0))"), {"name": name}
        )
        await conn.execute(
            text("SELECT set_config('statement_timeout', :before, true)"), {"before": before}
        )

    def for_update(self, query: Query, *, skip_locked: bool = False) -> Query:
        """`query ... FOR UPDATE [SKIP LOCKED]`."""
        return query.with_for_update(skip_locked=skip_locked)

    async def load_sessions(
        self, conn: AsyncConnection, keys: Collection[Key], *, lock: bool = False
    ) -> list[SessionRow]:
        """One statement over arrays of the keys."""
        if not keys:
            return []
        return [session_row(row) for row in await pg_bulk.load_sessions(conn, keys, lock=lock)]

    async def save_sessions(self, conn: AsyncConnection, rows: Sequence[SessionRow]) -> None:
        """One upsert over arrays of the columns."""
        if rows:
            await pg_bulk.save_sessions(conn, rows)

    async def save_history(self, conn: AsyncConnection, rows: Sequence[HistoryRow]) -> None:
        """One insert over arrays of the columns."""
        if rows:
            await pg_bulk.save_history(conn, rows)

    async def add_to_outbox(self, conn: AsyncConnection, rows: Sequence[OutboxRow]) -> None:
        """One insert over arrays, ids drawn in the arrays' order."""
        if rows:
            await pg_bulk.add_to_outbox(conn, rows)

    async def save_revocations(self, conn: AsyncConnection, rows: Sequence[RevocationRow]) -> None:
        """One upsert over arrays."""
        if rows:
            await pg_bulk.save_revocations(conn, rows)

    def active_count(
        self, filter: SessionFilter | FilterShape, tenant_id: TenantRef, now: Moment
    ) -> ColumnElement[int]:
        """From the kept counts when the filter names session types only, else row by row."""
        types = types_only(filter)
        if types is None:
            return rows_counted(filter, tenant_id, now)
        return kept_counted(types, tenant_id, now)

    async def one_statement(self, conn: AsyncConnection) -> AsyncConnection:
        """In autocommit: no BEGIN and no COMMIT, each a round trip."""
        return await conn.execution_options(isolation_level="AUTOCOMMIT")

    @contextlib.asynccontextmanager
    async def one_read(self, conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
        """One repeatable-read, read-only transaction: every statement sees its snapshot."""
        reading = await conn.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
        async with reading.begin():
            yield reading

    @contextlib.asynccontextmanager
    async def search(
        self, conn: AsyncConnection, *, capped: bool, keyed: bool = False
    ) -> AsyncIterator[None]:
        """A read transaction (or a step of the caller's) that finds the matches through the
        search indexes, never by walking a sort index; `capped`, without parallel workers
        (`_CAPPED`); `keyed` too, its statements planned once per connection
        (`_CAPPED_KEYED`)."""
        async with in_transaction(conn):
            await _plan_as(conn, (_CAPPED_KEYED if keyed else _CAPPED) if capped else _SEARCH)
            yield

    @contextlib.asynccontextmanager
    async def walk(self, conn: AsyncConnection, *, keyed: bool = False) -> AsyncIterator[None]:
        """A read transaction (or a step of the caller's) that walks a sort index in order
        (an index-only scan where the index holds every column read), never a bitmap of every
        match sorted afterwards; `keyed`, its statements planned once per connection
        (`_KEYED`)."""
        async with in_transaction(conn):
            await _plan_as(conn, _KEYED if keyed else _WALK)
            yield

    @contextlib.asynccontextmanager
    async def bulk_load(self) -> AsyncIterator[None]:
        """Without the listing indexes while the rows go in, then each built in one pass, and
        the table analyzed: the planner's statistics are of the rows loaded, not of the empty
        table (a search would read the table where an index answers until autovacuum came)."""
        async with self.engine.begin() as conn:
            for statement in listing_indexes.drop_statements():
                await conn.exec_driver_sql(statement)
        try:
            yield
        finally:
            async with self.engine.begin() as conn:
                for statement in listing_indexes.create_statements():
                    await conn.exec_driver_sql(statement)
                await conn.exec_driver_sql("ANALYZE sessions")


_SEEN_ONCE = object()
"""`PostgresStore.run`: a statement executed once, not compiled to driver SQL yet."""


@dataclass(frozen=True)
class DriverSQL:
    """A statement compiled once to the driver's SQL (asyncpg: `$1`, `$2`, ... in order):
    its parameters' names in that order, the values compiled into it (literals, limits), and
    the conversions SQLAlchemy applies to a value before the driver sees it (arrays)."""

    sql: str
    names: tuple[str, ...]
    fixed: Mapping[str, Any]
    processors: Mapping[str, Callable[[Any], Any]]

    @classmethod
    def of(cls, statement: Executable, dialect: Dialect) -> DriverSQL | None:
        """`statement` compiled for `dialect`, or None where its SQL depends on the values
        (expanding `IN`, values rendered at execution) or its rows need converting (a
        result processor): those go through SQLAlchemy as usual."""
        assert isinstance(statement, ClauseElement)
        compiled = statement.compile(dialect=dialect)
        assert isinstance(compiled, SQLCompiler)
        processors = compiled._bind_processors
        if (
            compiled.positiontup is None
            or not all(callable(p) for p in processors.values())  # tuples of processors
            or compiled.literal_execute_params
            or compiled.post_compile_params
            or compiled.escaped_bind_names  # names the SQL spells otherwise than the values
            or any(c[3].result_processor(dialect, None) for c in compiled._result_columns)
        ):
            return None
        return cls(
            compiled.string,
            tuple(compiled.positiontup),
            compiled.construct_params(_check=False),
            {name: p for name, p in processors.items() if callable(p)},
        )

    def arguments(self, values: Mapping[str, Any]) -> tuple[Any, ...]:
        """The driver's positional arguments for `values` (the rest as compiled)."""
        fixed, processors = self.fixed, self.processors
        arguments = []
        for name in self.names:
            value = values[name] if name in values else fixed[name]
            processor = processors.get(name)
            arguments.append(value if processor is None or value is None else processor(value))
        return tuple(arguments)


def _ping_on_checkout(engine: AsyncEngine, alive_bypass: float) -> None:
    """Test each connection as the pool hands it out: one statement, one round trip, unless it
    came back to the pool less than `alive_bypass` seconds ago.

    A connection the server dropped (a restart, a failover, an idle timeout) is replaced before
    anyone uses it, as `pool_pre_ping` would; but its asyncpg ping is three round trips (BEGIN,
    the statement, ROLLBACK: a prepared statement must not outlive a transaction behind
    PgBouncer), a quarter of a list request's. `SELECT 1` in the simple query protocol (asyncpg's
    `execute` without arguments) prepares nothing, so it is one round trip behind PgBouncer too.

    A connection that worked a moment ago is taken as working, as HikariCP does
    (`aliveBypassWindowMs`, 500 ms by default): under load every connection comes back within
    milliseconds, and the ping was one of a first page's five round trips. A connection the
    server drops later than the window after its last use (an idle timeout; a restart or a
    failover, which take longer) is still tested and replaced. One it drops within the window
    (`pg_terminate_backend`, a restart faster than the window) fails the one statement that
    meets it, as a database that is down does (the admin API answers 503), and the pool
    connects anew for the next.
    """

    @event.listens_for(engine.sync_engine.pool, "checkin")
    def _returned(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_RETURNED_AT] = time.monotonic()

    @event.listens_for(engine.sync_engine.pool, "checkout")
    def _ping(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        returned = record.info.pop(_RETURNED_AT, None)
        if returned is not None and time.monotonic() - returned < alive_bypass:
            return
        try:
            await_(dbapi_connection.driver_connection.execute("SELECT 1"))
        except Exception as exc:  # any failure: the pool drops it and connects anew
            raise DisconnectionError(f"pooled connection unusable: {type(exc).__name__}") from exc


_REGISTRY = {"application_name": "session-registry"}
"""The session settings of the registry's connections (startup parameters)."""
_LISTING = {
    "application_name": "session-admin-api",
    "plan_cache_mode": "force_custom_plan",
    "statement_timeout": STATEMENT_TIMEOUT,
}
"""The admin API's connections (`listing`): every query planned for its own values, and
bounded by `STATEMENT_TIMEOUT`.

A generic plan cannot know a search pattern or how broad a filter is, and would pick the
wrong index for the rest of the connection's life. Statements binding keys only are planned
once instead, inside a step that says so (`_KEYED`). Startup parameters of the connection, so
the session keeps them whatever its transactions do. (Until 2026-12-04 they were `SET` in a
pool `connect` hook, inside the connection's first transaction, which its return to the pool
rolled back: after its first request a connection planned as the server does (`auto`) and had
no timeout at all.)"""


async def _plan_as(conn: AsyncConnection, settings: dict[str, str]) -> None:
    """The planner switches of `settings` for the rest of the transaction, unless it has
    them already: consecutive steps of one kind cost one round trip, not one each."""
    transaction = conn.sync_connection.get_transaction() if conn.sync_connection else None
    held = conn.info.get(_PLANNER)
    if held is not None and held[0] is transaction and held[1] is settings:
        return
    await _set_local(conn, **settings)
    # the transaction is kept (not its id, which a later one could reuse) with its switches
    conn.info[_PLANNER] = (transaction, settings)


async def _set_local(conn: AsyncConnection, **settings: str) -> None:
    """`SET LOCAL` each of `settings` in one round trip (`set_config(..., is_local => true)`),
    as driver SQL: the statement is the same every time, and SQLAlchemy's compiling and
    binding of a `text()` cost more than its round trip."""
    await conn.exec_driver_sql(_set_config(tuple(settings)), tuple(settings.values()))


@functools.lru_cache(maxsize=8)
def _set_config(names: tuple[str, ...]) -> str:
    """The statement `_set_local` sends for these settings, their values its parameters."""
    return "SELECT " + ", ".join(f"set_config('{n}', ${i}, true)" for i, n in enumerate(names, 1))
