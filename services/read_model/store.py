"""The store interface: what the read model does differently on each backend, one class each.

A service picks its store once, at start-up, from the database URL (`read_model.database.
open_store`), and hands it to whatever writes or locks rows; a `UnitOfWork` carries it, so
code that works in one reaches it as `uow.store`. No adapter asks which backend it talks to.

The interface holds what differs: upserts (`insert`), row locks (`for_update`), the registry's
bulk reads and writes of a batch, loading a whole log (`bulk_load`), counting a filter's
sessions, a text search's one pass, and replacing the database by a rebuilt one. Everything else
is plain SQLAlchemy Core on `store.engine` and runs the same everywhere. The database-
parametrised tests are its contract suite
(`tests/integration/read_model/test_read_model_store_contract.py` exercises it directly).
"""

from __future__ import annotations

import contextlib
import time
from abc import ABC, abstractmethod
from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Collection,
    Hashable,
    Mapping,
    Sequence,
)
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any, TypeAlias, TypeVar

from sqlalchemy import ColumnElement, DateTime, Executable, Result, Select, Table, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from read_model.active import Moment, TenantRef
from read_model.session_counts import rows_counted
from read_model.session_query import FilterShape
from read_model.tables import session_history, sessions
from session_contracts.models import SessionFilter, SessionType, as_utc

SESSION_COLUMNS: tuple[str, ...] = tuple(column.name for column in sessions.columns)
"""The columns of `sessions`, in the order of a `SessionRow`'s values."""
HISTORY_COLUMNS: tuple[str, ...] = tuple(column.name for column in session_history.columns)
"""The columns of `session_history`, in the order of a `HistoryRow`'s values."""

SessionRow: TypeAlias = tuple[Any, ...]
"""A `sessions` row: the values of `SESSION_COLUMNS`; times aware UTC, `ip_packed` bytes."""
HistoryRow: TypeAlias = tuple[Any, ...]
"""A `session_history` row: the values of `HISTORY_COLUMNS`."""
OutboxRow: TypeAlias = tuple[str, bytes, bytes | None, bytes | None]
"""(topic, key, value (None: a tombstone), headers as `session_contracts.tracing` stores them)."""
"""(topic, key, value) of a record to publish; value None is a tombstone."""
RevocationRow: TypeAlias = tuple[str, str, datetime, str, datetime, str]
"""(tenant_id, session_id, valid_until, session_type, revoked_at, reason) of a revocation
awaiting its tombstone: the record published (`REVOCATION_COLUMNS`)."""
REVOCATION_COLUMNS = (
    "tenant_id",
    "session_id",
    "valid_until",
    "session_type",
    "revoked_at",
    "reason",
)
"""The columns of `revocations`, in the order of a `RevocationRow`'s values."""
Key: TypeAlias = tuple[str, str]
Upsert: TypeAlias = sqlite.Insert | postgresql.Insert
Query = TypeVar("Query", bound=Select[Any])
First = TypeVar("First")
Second = TypeVar("Second")
Value = TypeVar("Value")

_TIMES = tuple(i for i, c in enumerate(sessions.columns) if isinstance(c.type, DateTime))
_IP = SESSION_COLUMNS.index("ip_packed")


def session_row(values: Sequence[Any]) -> SessionRow:
    """A stored `sessions` row as stores hand it out: times aware UTC, `ip_packed` bytes.

    SQLite gives stored times back naive, and asyncpg gives back naive the +/-infinity that
    stands for datetime.max and datetime.min (both legal in the contract); all stored is UTC.
    """
    row = list(values)
    for i in _TIMES:
        value = row[i]
        if value is not None and value.tzinfo is not UTC:  # asyncpg's are UTC already
            row[i] = as_utc(value)
    if type(row[_IP]) is not bytes and row[_IP] is not None:
        row[_IP] = bytes(row[_IP])
    return tuple(row)


def row_dicts(result: Result[Any]) -> list[dict[str, Any]]:
    """Each row of `result` as a dict of its columns: the keys read once, zipped with each
    row's values (`dict(row._mapping)` cost four times as much, a tenth of a millisecond a
    page of fifty)."""
    keys = list(result.keys())
    return [dict(zip(keys, row, strict=True)) for row in result]


@contextlib.asynccontextmanager
async def in_transaction(conn: AsyncConnection) -> AsyncIterator[None]:
    """A transaction of its own, unless `conn` is in one already (then a step of that one)."""
    if conn.in_transaction():
        yield
        return
    async with conn.begin():
        yield


Built = TypeVar("Built")
BUILT_STATEMENTS = 256
"""The most statements a store keeps built (`Store.built_once`): shapes of queries, a few
per order and filter in use."""
TENANT_SIZE_SECONDS = 10.0
"""How long a tenant's counted size serves a search's choice of path (`Store.tenant_size`)."""
TENANT_SIZES = 4096
"""The most tenants whose size a store keeps (then all are let go)."""


class Store(ABC):
    """The read model on one backend: its engine, and the operations whose SQL differs."""

    search_walk: int | None = None
    """How a text search's first page is read (`admin_api.adapters.session_search`): None,
    in one pass over every match with its exact total; a number, by walking that many rows of
    the sort order first (PostgreSQL's index-only walk), then the trigram indexes, counting at
    most `search_cap` matches there."""
    search_cap: int = 5000
    user_name_directory: bool = False
    """Whether `listed_user_names` (PostgreSQL, revision 0501) resolves a search term to the
    user names holding it before any session is read."""

    def __init__(self, url: str, engine: AsyncEngine) -> None:
        self.url = url
        self.engine = engine
        self._built: dict[Hashable, Any] = {}
        self._sizes: dict[tuple[str, tuple[str, ...]], tuple[float, int]] = {}

    def built_once(self, key: Hashable, build: Callable[[], Built]) -> Built:
        """`build()`'s statement for `key` (the shape of a query, its values parameters),
        built once per store: building and keying a large statement costs about a
        millisecond of Python. At most `BUILT_STATEMENTS` are kept (then all are let go)."""
        if key not in self._built:
            if len(self._built) >= BUILT_STATEMENTS:
                self._built.clear()
            self._built[key] = build()
        built: Built = self._built[key]
        return built

    async def run(
        self, conn: AsyncConnection, statement: Executable, values: Mapping[str, Any]
    ) -> Result[Any]:
        """`statement`, one of the statements built once (`built_once`, or a builder's own
        cache), executed with `values` for its bound parameters. On PostgreSQL it is compiled
        once to the driver's SQL (`PostgresStore.run`)."""
        return await conn.execute(statement, values)

    async def dispose(self) -> None:
        """Close the engine's connections."""
        await self.engine.dispose()

    async def exists(self) -> bool:
        """Whether the database is there to connect to (without creating it)."""
        return True

    @abstractmethod
    async def continue_ids(self, conn: AsyncConnection, table: Table) -> None:
        """Have `table`'s generated ids continue after the largest it holds (rows copied in
        with their ids)."""

    @abstractmethod
    async def identity(self) -> tuple[object, ...] | None:
        """What names this database whatever its URL's spelling (`localhost` or `127.0.0.1`,
        a path through `..` or a link); None when it is not there to ask."""

    @abstractmethod
    async def replace_with(self, rebuilt: Store, stamp: str) -> str:
        """Put `rebuilt`'s database where this one is; keep this one as a backup named with
        `stamp`, and return where it went. Nothing may be connected to either."""

    # upserts and locks

    @abstractmethod
    def insert(self, table: Table) -> Upsert:
        """An INSERT into `table` that takes ON CONFLICT clauses (upserts, insert-or-ignore)."""

    @abstractmethod
    async def lock_schema(self, conn: AsyncConnection) -> None:
        """Hold the database's migration lock until the unit of work ends: replicas starting
        together migrate one after another (the later ones find the schema current)."""

    @abstractmethod
    async def lock_named(self, conn: AsyncConnection, name: str) -> None:
        """Hold a lock named `name` until the unit of work ends: writers naming the same one
        take turns, whether or not the rows they read exist yet."""

    @abstractmethod
    def for_update(self, query: Query, *, skip_locked: bool = False) -> Query:
        """`query`, locking what it reads until the unit of work ends; with `skip_locked`,
        rows another writer holds are left out (the next pass gets them)."""

    def binary_order(self, column: ColumnElement[str]) -> ColumnElement[str]:
        """`column` ordered by its bytes (code points), as Python orders strings: two
        databases' rows then merge in one pass (SQLite's default collation is already so)."""
        return column

    def one_of(self, column: ColumnElement[Value], values: Sequence[Value]) -> ColumnElement[bool]:
        """`column IN (values)`: thousands of values (SQLite: one parameter each, within its
        limit of 32,766 per statement)."""
        return column.in_(values)

    # the registry's batches

    async def select_sessions(
        self,
        conn: AsyncConnection,
        query: Select[Any],
        *,
        lock: bool = False,
        skip_locked: bool = False,
    ) -> list[SessionRow]:
        """The rows of a query over all of `sessions`' columns, locked when `lock`."""
        if lock:
            query = self.for_update(query, skip_locked=skip_locked)
        return [session_row(row) for row in await conn.execute(query)]

    @abstractmethod
    async def load_sessions(
        self, conn: AsyncConnection, keys: Collection[Key], *, lock: bool = False
    ) -> list[SessionRow]:
        """The stored rows of these (tenant_id, session_id) keys in key order, locked in that
        order when `lock` (one lock order for every writer: no deadlock cycles)."""

    @abstractmethod
    async def save_sessions(self, conn: AsyncConnection, rows: Sequence[SessionRow]) -> None:
        """Insert these rows, or overwrite the stored ones with the same key."""

    @abstractmethod
    async def save_history(self, conn: AsyncConnection, rows: Sequence[HistoryRow]) -> None:
        """Insert these history rows; a row already stored (same tenant and event id) stays."""

    @abstractmethod
    async def add_to_outbox(self, conn: AsyncConnection, rows: Sequence[OutboxRow]) -> None:
        """Queue records to publish; their ids (the relay's order) follow the given order."""

    @abstractmethod
    async def save_revocations(self, conn: AsyncConnection, rows: Sequence[RevocationRow]) -> None:
        """Insert these revocations; a stored one keeps the later of its `valid_until` and
        the new one (a revocation's end never moves earlier), with the other fields of the
        record lasting longer (the new one's on a tie, or over a row keeping none)."""

    # the admin API's reads

    @abstractmethod
    def active_count(
        self, filter: SessionFilter | FilterShape, tenant_id: TenantRef, now: Moment
    ) -> ColumnElement[int]:
        """How many of the tenant's listed sessions active at `now` match `filter` (its
        values, or parameters of its shape: `read_model.session_query.filter_clause`): an
        expression (scalar subqueries), to select alone or beside a page's columns."""

    async def count_active(
        self,
        conn: AsyncConnection,
        filter: SessionFilter,
        tenant_id: str,
        now: datetime,
        policies_at: datetime | None = None,
    ) -> int:
        """How many of the tenant's listed sessions active at `now` match `filter`; with
        `policies_at`, `policy_outdated` compares with the settings in force then (row by
        row: such a filter names more than session types)."""
        counted = (
            self.active_count(filter, tenant_id, now)
            if policies_at is None
            else rows_counted(filter, tenant_id, now, policies_at)
        )
        return int((await conn.execute(select(counted))).scalar_one())

    async def tenant_size(
        self,
        conn: AsyncConnection,
        tenant_id: str,
        now: datetime,
        types: tuple[SessionType, ...] = (),
    ) -> int:
        """About how many active listed sessions the tenant has (of `types`, when given):
        counted (`count_active`; from the kept counts), then kept for `TENANT_SIZE_SECONDS`.

        Only for choosing how to read (a search's path: `admin_api.adapters.session_search`),
        never for what is answered: a size a few seconds old chooses as well, and spares a
        statement per search. At most `TENANT_SIZES` sizes are kept."""
        key = (tenant_id, types)
        kept = self._sizes.get(key)
        if kept is not None and time.monotonic() - kept[0] < TENANT_SIZE_SECONDS:
            return kept[1]
        counted = SessionFilter(session_type=list(types)) if types else SessionFilter()
        size = await self.count_active(conn, counted, tenant_id, now)
        if len(self._sizes) >= TENANT_SIZES:
            self._sizes.clear()
        self._sizes[key] = (time.monotonic(), size)
        return size

    async def read_together(
        self,
        first: Callable[[AsyncConnection], Awaitable[First]],
        second: Callable[[AsyncConnection], Awaitable[Second]],
    ) -> tuple[First, Second]:
        """Two reads that see one snapshot of the database, so that a page and its total
        agree although the registry commits between them: one after the other in one read
        transaction (`one_read`).

        Not side by side on two connections sharing an exported snapshot, as it once was on
        PostgreSQL: a page reads a few index entries, so the overlap saved less than the second
        connection's ping, transaction and snapshot import cost (4.1 ms against 3.0 ms per
        first page at a million sessions, measured in-process)."""
        async with self.engine.connect() as conn, self.one_read(conn) as reading:
            return await first(reading), await second(reading)

    async def one_statement(self, conn: AsyncConnection) -> AsyncConnection:
        """`conn`, for a read that is a single statement: a statement sees one snapshot of its
        own, so where a transaction costs round trips (PostgreSQL's BEGIN and COMMIT) it
        runs without one."""
        return conn

    @contextlib.asynccontextmanager
    async def one_read(self, conn: AsyncConnection) -> AsyncIterator[AsyncConnection]:
        """One read transaction for the several statements of a search: they all see one
        snapshot, so its page and its count agree however the registry commits meanwhile.
        Yields the connection to read on; `search` and `walk` inside it add no transaction
        of their own."""
        async with conn.begin():
            yield conn

    @abstractmethod
    def search(
        self, conn: AsyncConnection, *, capped: bool, keyed: bool = False
    ) -> AbstractAsyncContextManager[None]:
        """A read transaction for one pass over a text search's matches (first page and
        total together); inside `one_read`, a step of its transaction. `capped`: every
        statement in it stops at a cap (a step of the bounded path), which the backend may
        plan for (PostgreSQL: no parallel workers); an exact count is not capped. `keyed`
        (with `capped`): its statements find their rows through one index whatever the
        values (a term's keys, a selective pattern's trigrams), the values only testing the
        rows found, so the backend may plan them once (PostgreSQL), as `walk`'s."""

    @contextlib.asynccontextmanager
    async def walk(self, conn: AsyncConnection, *, keyed: bool = False) -> AsyncIterator[None]:
        """A read transaction that reads rows in the sort order through the sort indexes,
        never gathering every match first (a text search's walk); inside `one_read`, a step
        of its transaction. `keyed`: its statements compare columns to their values by
        equality only (keys, arrays of keys, limits: no pattern, no range), so the plan is
        the same whatever the values, and the backend may plan them once (PostgreSQL)."""
        async with in_transaction(conn):
            yield

    # loading a whole log at once

    def bulk_load(self) -> AbstractAsyncContextManager[None]:
        """Around a load of many rows into this database (a rebuild's replay): indexes that
        are cheaper to build once at the end than to keep row by row are dropped on entry and
        built again on exit, whatever the load raised. Nothing to do by default."""
        return contextlib.nullcontext()
