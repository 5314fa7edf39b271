"""The one way to write the read model: a unit of work owning one writer's transaction.

`async with UnitOfWork(store) as uow:` opens a connection, begins a transaction and commits it
when the block ends, or rolls it back when the block raises; the block works through `uow.conn`
and reaches what differs by backend through `uow.store`. `await UnitOfWork(store).run(work)`
runs `work(uow)` in one and, when the database answers with a deadlock, a serialization failure
(SQLSTATE 40P01, 40001) or SQLite's "database is locked", rolls it back and runs it again from
scratch, up to `attempts` times in all.

On SQLite the transaction begins with BEGIN IMMEDIATE (the `SqliteStore` engine's begin hook
reads the `IMMEDIATE` option set here): a deferred transaction that reads and then writes fails
with SQLITE_BUSY when another connection committed in between; an immediate one waits for the
write lock up front. PostgreSQL ignores the option.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self, TypeVar

from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, StatementError
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.store import Store

log = logging.getLogger(__name__)
T = TypeVar("T")

IMMEDIATE = "read_model_immediate"
"""Execution option: on SQLite, open the transaction with BEGIN IMMEDIATE (a writer)."""
RETRYABLE_SQLSTATES = frozenset({"40001", "40P01"})  # serialization failure, deadlock


def retryable(exc: DBAPIError) -> bool:
    """Whether running the whole transaction again may succeed (a deadlock, a lock timeout)."""
    code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
    if code in RETRYABLE_SQLSTATES:
        return True
    return "database is locked" in str(exc.orig)


DATA_SQLSTATE_CLASSES = frozenset({"22", "23", "54"})
"""SQLSTATE classes of errors the data causes: data exception (a NUL, a value out of range),
integrity constraint violation, program limit exceeded (an index row too large)."""


def caused_by_data(exc: BaseException) -> bool:
    """Whether the database refused what it was given (running it again fails the same way),
    not whether it could be reached: a data or integrity error, or a value the driver could not
    convert. Connectivity, locks and timeouts are not (they are waited out and retried)."""
    if isinstance(exc, DBAPIError):
        if exc.connection_invalidated:
            return False
        if isinstance(exc, DataError | IntegrityError):
            return True
        code = getattr(exc.orig, "pgcode", None) or getattr(exc.orig, "sqlstate", None)
        return isinstance(code, str) and code[:2] in DATA_SQLSTATE_CLASSES
    if isinstance(exc, StatementError):  # a parameter the driver would not convert
        return isinstance(exc.orig, ValueError | OverflowError | TypeError)
    # sqlite3: an integer beyond 64 bits, raised bare by the driver; Python's own arithmetic
    # overflowing (a date beyond year 9999) is a bug a record triggers, not a refusal
    return isinstance(exc, OverflowError) and _raised_in(exc, _SQLITE_DRIVERS)


_SQLITE_DRIVERS = ("aiosqlite", "sqlite3")


def _raised_in(exc: BaseException, packages: tuple[str, ...]) -> bool:
    """Whether the innermost Python frame of `exc`'s traceback is in one of `packages`."""
    tb = exc.__traceback__
    if tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    module = str(tb.tb_frame.f_globals.get("__name__", ""))
    return module.split(".")[0] in packages


class UnitOfWork:
    """One writer's transaction on the read model: commit on success, roll back on error."""

    def __init__(self, store: Store, *, attempts: int = 5) -> None:
        self.store = store
        self._attempts = attempts
        self._stack: contextlib.AsyncExitStack | None = None
        self._conn: AsyncConnection | None = None

    @property
    def conn(self) -> AsyncConnection:
        """The connection the transaction runs on (inside `async with` only)."""
        if self._conn is None:
            raise RuntimeError("the unit of work is not open: use `async with UnitOfWork(...)`")
        return self._conn

    async def __aenter__(self) -> Self:
        if self._stack is not None:
            raise RuntimeError("the unit of work is open already")
        async with contextlib.AsyncExitStack() as stack:
            conn = await stack.enter_async_context(self.store.engine.connect())
            conn = await conn.execution_options(**{IMMEDIATE: True})
            await stack.enter_async_context(conn.begin())
            self._stack = stack.pop_all()
        self._conn = conn
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        stack, self._stack, self._conn = self._stack, None, None
        assert stack is not None
        await stack.__aexit__(exc_type, exc, traceback)

    async def run(self, work: Callable[[UnitOfWork], Awaitable[T]]) -> T:
        """`work(self)` in this unit of work, run again from scratch when the database asks."""
        for attempt in range(1, self._attempts + 1):
            try:
                async with self:
                    return await work(self)
            except DBAPIError as exc:
                if attempt == self._attempts or not retryable(exc):
                    raise
                log.warning("transaction retried (attempt %d): %s", attempt, exc.orig)
                await asyncio.sleep(0.05 * attempt)
        raise AssertionError("unreachable")
