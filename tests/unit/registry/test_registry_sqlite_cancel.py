"""A task cancelled inside a SQLite statement leaves the database writable at once.

Without the rollback on invalidation, SQLAlchemy closed such a connection as is; the cursor's
unfinished statement kept the closed connection alive as a "zombie" holding the write lock
until the garbage collector freed the cursor. That is how a registry stopped mid-batch kept
the surviving registry's next batch, and so its rebalance, waiting for minutes.
"""

from __future__ import annotations

import asyncio
import gc
from pathlib import Path

import pytest
from sqlalchemy import text

from read_model.database import open_store
from read_model.unit_of_work import UnitOfWork
from sqlite_locks import writable

# one row, computed for a while (about half a second on an idle core; 200,000 steps took
# 45 ms and sometimes finished before the cancellation): the cancellation lands while SQLite
# is stepping it
SLOW_SUM = (
    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 2000000) "
    "SELECT sum(x) FROM c"
)


async def test_a_transaction_cancelled_mid_statement_releases_the_write_lock(
    tmp_path: Path,
) -> None:
    path = tmp_path / "locks.db"
    store = open_store(f"sqlite+aiosqlite:///{path}")
    reading = asyncio.Event()

    async def slow_read(uow: UnitOfWork) -> None:
        reading.set()
        await uow.conn.execute(text(SLOW_SUM))

    gc.disable()  # the zombie lives until a collection frees the cursor: keep it from helping
    try:
        task = asyncio.create_task(UnitOfWork(store).run(slow_read))  # BEGIN IMMEDIATE
        await reading.wait()
        await asyncio.sleep(0.05)
        task.cancel()  # what Registry.stop does to a batch in flight
        with pytest.raises(asyncio.CancelledError):
            await task
        assert await asyncio.to_thread(writable, path, 0.5)
    finally:
        gc.enable()
        await store.dispose()
