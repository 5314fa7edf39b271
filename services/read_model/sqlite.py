"""SQLite: the read model in one file, for development and tests.

One writer at a time: WAL, a busy timeout, and every `UnitOfWork` begins IMMEDIATE, so a
writer holds the database's write lock from its start and row locks (`for_update`) have
nothing to add. Upserts are INSERT ... ON CONFLICT; batches go in chunks (SQLite bounds the
parameters of one statement); counts read the rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
from collections.abc import AsyncIterator, Collection, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from sqlalchemy import ColumnElement, Table, case, event, func, insert, or_, select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import ConnectionPoolEntry

from read_model.active import Moment, TenantRef
from read_model.session_counts import rows_counted
from read_model.session_query import FilterShape
from read_model.store import (
    HISTORY_COLUMNS,
    REVOCATION_COLUMNS,
    SESSION_COLUMNS,
    HistoryRow,
    Key,
    OutboxRow,
    Query,
    RevocationRow,
    SessionRow,
    Store,
    in_transaction,
    session_row,
)
from read_model.tables import outbox, revocations, session_history, sessions
from read_model.unit_of_work import IMMEDIATE
from session_contracts.models import SessionFilter

BUSY_TIMEOUT_MS = 30_000
KEYS_PER_SELECT = 2000
ROWS_PER_INSERT = 2000
_s = sessions.c


def _session_upsert() -> sqlite.Insert:
    statement = sqlite.insert(sessions)
    updated = [c for c in SESSION_COLUMNS if c not in {"tenant_id", "session_id"}]
    return statement.on_conflict_do_update(
        index_elements=[_s.tenant_id, _s.session_id],
        set_={name: statement.excluded[name] for name in updated},
    )


_SESSION_UPSERT = _session_upsert()
_HISTORY_INSERT = sqlite.insert(session_history).on_conflict_do_nothing(
    index_elements=[session_history.c.tenant_id, session_history.c.event_id]
)
_revocation = sqlite.insert(revocations)
_REVOCATION_UPSERT = _revocation.on_conflict_do_update(
    index_elements=[revocations.c.tenant_id, revocations.c.session_id],
    # never earlier: a later record cannot bring a tombstone forward
    set_={
        "valid_until": func.max(revocations.c.valid_until, _revocation.excluded.valid_until),
        # the record's fields from the one lasting longer (or any, over a row keeping none)
        **{
            name: case(
                (
                    or_(
                        revocations.c[name].is_(None),
                        _revocation.excluded.valid_until >= revocations.c.valid_until,
                    ),
                    _revocation.excluded[name],
                ),
                else_=revocations.c[name],
            )
            for name in REVOCATION_COLUMNS[3:]
        },
    },
)


class SqliteStore(Store):
    """The read model in a SQLite file (aiosqlite)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        super().__init__(url, create_async_engine(url, echo=echo, connect_args={"timeout": 30}))
        _install_hooks(self.engine, self.path)

    @property
    def path(self) -> Path | None:
        """The database file (None in memory). A `file:` URI names its file too: until
        2026-12-06 it gave None, so `rebuild --into` one took the live database for another
        (a review) and `--swap` with one renamed the live file away and put nothing back."""
        url = make_url(self.url)
        database = url.database
        if not database or database == ":memory:":
            return None
        if database.startswith("file:"):
            named = urlsplit(database)
            in_memory = url.query.get("mode") == "memory" or "mode=memory" in named.query
            if named.path in ("", ":memory:") or in_memory:
                return None
            return Path(unquote(named.path))
        return Path(database)

    async def exists(self) -> bool:
        """Whether the file is there (connecting would create it)."""
        return self.path is None or await asyncio.to_thread(self.path.exists)

    async def continue_ids(self, conn: AsyncConnection, table: Table) -> None:
        """Nothing: SQLite gives a new row the largest rowid plus one by itself."""

    async def identity(self) -> tuple[object, ...] | None:
        """The file's device and inode (its resolved path while it is not there yet)."""
        path = self.path
        if path is None:
            return None  # in memory: no other URL names it
        try:
            found = await asyncio.to_thread(path.stat)
        except FileNotFoundError:
            return ("sqlite", str(await asyncio.to_thread(path.resolve)))
        return ("sqlite", found.st_dev, found.st_ino)

    async def replace_with(self, rebuilt: Store, stamp: str) -> str:
        """Rename the files: this one (with its WAL) to a backup, the rebuilt one into place."""
        if not isinstance(rebuilt, SqliteStore):
            raise ValueError("both databases must be on the same backend to swap")
        live, new = self.path or Path(), rebuilt.path or Path()
        return await asyncio.to_thread(_swap_files, live, new, stamp)

    def insert(self, table: Table) -> sqlite.Insert:
        """SQLite's INSERT (ON CONFLICT DO NOTHING / DO UPDATE)."""
        return sqlite.insert(table)

    async def lock_schema(self, conn: AsyncConnection) -> None:
        """Nothing more: the unit of work's BEGIN IMMEDIATE holds the write lock already."""

    async def lock_named(self, conn: AsyncConnection, name: str) -> None:
        """Nothing more: the unit of work's BEGIN IMMEDIATE holds the write lock already."""

    def for_update(self, query: Query, *, skip_locked: bool = False) -> Query:
        """`query` as it is: the unit of work holds the database's write lock already."""
        return query

    async def load_sessions(
        self, conn: AsyncConnection, keys: Collection[Key], *, lock: bool = False
    ) -> list[SessionRow]:
        """The stored rows of these keys, in key order, a chunk of keys per SELECT."""
        ordered = sorted(keys)
        found: list[SessionRow] = []
        for start in range(0, len(ordered), KEYS_PER_SELECT):
            chunk = ordered[start : start + KEYS_PER_SELECT]
            query = (
                select(sessions)
                .where(tuple_(_s.tenant_id, _s.session_id).in_(chunk))
                .order_by(_s.tenant_id, _s.session_id)
            )
            found.extend(session_row(row) for row in await conn.execute(query))
        return found

    async def save_sessions(self, conn: AsyncConnection, rows: Sequence[SessionRow]) -> None:
        """Upsert the rows, a chunk per statement."""
        await _in_chunks(
            conn, _SESSION_UPSERT, [dict(zip(SESSION_COLUMNS, r, strict=True)) for r in rows]
        )

    async def save_history(self, conn: AsyncConnection, rows: Sequence[HistoryRow]) -> None:
        """Insert the rows, skipping event ids already stored, a chunk per statement."""
        await _in_chunks(
            conn, _HISTORY_INSERT, [dict(zip(HISTORY_COLUMNS, r, strict=True)) for r in rows]
        )

    async def add_to_outbox(self, conn: AsyncConnection, rows: Sequence[OutboxRow]) -> None:
        """Insert the records in the given order."""
        if rows:
            values = [
                {"topic": topic, "key": key, "value": value, "headers": headers}
                for topic, key, value, headers in rows
            ]
            await conn.execute(insert(outbox), values)

    async def save_revocations(self, conn: AsyncConnection, rows: Sequence[RevocationRow]) -> None:
        """Upsert the revocations."""
        if rows:
            await conn.execute(
                _REVOCATION_UPSERT,
                [dict(zip(REVOCATION_COLUMNS, row, strict=True)) for row in rows],
            )

    def active_count(
        self, filter: SessionFilter | FilterShape, tenant_id: TenantRef, now: Moment
    ) -> ColumnElement[int]:
        """Counted row by row."""
        return rows_counted(filter, tenant_id, now)

    @contextlib.asynccontextmanager
    async def search(
        self, conn: AsyncConnection, *, capped: bool, keyed: bool = False
    ) -> AsyncIterator[None]:
        """A plain read transaction (or a step of the caller's); `capped` and `keyed` change
        nothing."""
        async with in_transaction(conn):
            yield


def _swap_files(live: Path, rebuilt: Path, stamp: str) -> str:
    """Move the live file and its `-wal`/`-shm` to a backup, the rebuilt file into place.

    A rename across file systems fails (EXDEV): one rebuilt under /tmp is refused before
    anything moves, and a move that fails midway puts back what it moved, so the live name
    never ends up empty (the next start would create an empty database there; found by a
    review, 2026-12-06)."""
    backup = live.with_name(f"{live.name}.{stamp}.bak")
    if rebuilt.stat().st_dev != live.parent.stat().st_dev:
        raise OSError(
            f"the rebuilt database {rebuilt} is on another file system than {live}: rebuild "
            f"into the live database's folder to swap (nothing was moved)"
        )
    _settled(rebuilt)
    moved: list[tuple[Path, Path]] = []
    try:
        for suffix in ("", "-wal", "-shm"):
            current = Path(f"{live}{suffix}")
            if current.exists():
                os.replace(current, Path(f"{backup}{suffix}"))
                moved.append((current, Path(f"{backup}{suffix}")))
        os.replace(rebuilt, live)
    except OSError as exc:
        for before, after in reversed(moved):
            try:
                os.replace(after, before)
            except OSError as undoing:
                left = ", ".join(f"{a} (was {b})" for b, a in moved)
                raise SwapNotUndone(
                    f"the swap failed ({exc}) and putting the live database back failed too "
                    f"({undoing}): move these back by hand before starting anything: {left}"
                ) from exc
        raise
    return str(backup)


class SwapNotUndone(OSError):
    """A swap that failed midway, whose files could not all be put back: the live name may
    be empty, and the message says what is where."""


def _settled(path: Path) -> None:
    """Fold `path`'s write-ahead log into the file, or refuse: its last transactions (the
    carry-over's) may still be in `<path>-wal`, which a swap moving the file alone leaves
    behind, while a connection left open on it (a `diff --other`, a `sqlite3` shell) keeps it
    (found by a review, 2026-12-06)."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        busy, _, _ = db.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()
    if busy or Path(f"{path}-wal").exists():
        raise OSError(
            f"the rebuilt database {path} is open elsewhere (its -wal is held): close every "
            "connection to it and swap again (nothing was moved)"
        )


async def _in_chunks(conn: AsyncConnection, statement: Any, rows: list[dict[str, Any]]) -> None:
    for start in range(0, len(rows), ROWS_PER_INSERT):
        await conn.execute(statement, rows[start : start + ROWS_PER_INSERT])


def _install_hooks(engine: AsyncEngine, path: Path | None) -> None:
    @event.listens_for(engine.sync_engine, "do_connect")
    def _on_do_connect(*_args: Any) -> None:
        if path is not None:  # a fresh database in a folder not made yet
            path.parent.mkdir(parents=True, exist_ok=True)

    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
        # take transaction control away from the driver so BEGIN is ours (a UnitOfWork's
        # transaction begins IMMEDIATE: see read_model.unit_of_work)
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Connection) -> None:
        immediate = connection.get_execution_options().get(IMMEDIATE, False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    @event.listens_for(engine.sync_engine, "invalidate")
    def _on_invalidate(dbapi_connection: Any, _record: ConnectionPoolEntry, _exc: Any) -> None:
        _release_locks(dbapi_connection)


def _release_locks(dbapi_connection: Any) -> None:
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
