"""On SQLite a unit of work is a writer from its first moment: BEGIN IMMEDIATE takes the write
lock before any statement, so a read-then-write transaction never fails half-way with
SQLITE_BUSY because another connection committed in between."""

from __future__ import annotations

from pathlib import Path

from read_model.database import open_store, upgrade_schema
from read_model.unit_of_work import UnitOfWork
from sqlite_locks import writable


async def test_a_unit_of_work_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    path = tmp_path / "uow.db"
    url = f"sqlite+aiosqlite:///{path}"
    await upgrade_schema(url)
    store = open_store(url)
    try:
        async with UnitOfWork(store):
            assert not writable(path, 0.1)
        assert writable(path, 0.1)
    finally:
        await store.dispose()
