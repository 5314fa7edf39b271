"""The unit of work commits on success, rolls back on error, and runs again when the database
asks (deadlock, serialization failure, SQLite's lock timeout) — on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError, OperationalError

from migrated import MigratedCopies
from read_model.database import open_store
from read_model.store import Store
from read_model.tables import consumer_positions
from read_model.unit_of_work import UnitOfWork


@pytest.fixture
async def store(db_url: str, migrated: MigratedCopies) -> AsyncIterator[Store]:
    await migrated.migrate(db_url)
    store = open_store(db_url)
    yield store
    await store.dispose()


async def _positions(store: Store) -> int:
    async with store.engine.connect() as conn:
        query = select(func.count()).select_from(consumer_positions)
        return int((await conn.execute(query)).scalar_one())


async def _write(uow: UnitOfWork, partition: int = 0) -> None:
    await uow.conn.execute(
        consumer_positions.insert().values(
            consumer="c", topic="t", partition=partition, next_offset=1
        )
    )


async def test_a_unit_of_work_commits_when_its_block_ends(store: Store) -> None:
    async with UnitOfWork(store) as uow:
        await _write(uow)
    assert await _positions(store) == 1


async def test_a_unit_of_work_rolls_back_when_its_block_raises(store: Store) -> None:
    with pytest.raises(KeyError):
        async with UnitOfWork(store) as uow:
            await _write(uow)
            raise KeyError("boom")
    assert await _positions(store) == 0
    with pytest.raises(RuntimeError):
        _ = uow.conn  # closed with its block


async def test_run_retries_what_the_database_asks_to_retry(store: Store) -> None:
    attempts: list[int] = []

    async def work(uow: UnitOfWork) -> str:
        attempts.append(len(attempts) + 1)
        await _write(uow, partition=len(attempts))
        if len(attempts) < 3:  # written, then the lock wait ran out: all of it rolls back
            raise OperationalError("INSERT", {}, Exception("database is locked"))
        return "done"

    assert await UnitOfWork(store).run(work) == "done"
    assert attempts == [1, 2, 3]
    async with store.engine.connect() as conn:
        kept = (await conn.execute(select(consumer_positions.c.partition))).scalars().all()
    assert kept == [3]


async def test_run_gives_up_on_other_errors_and_after_its_attempts(store: Store) -> None:
    async with UnitOfWork(store) as uow:
        await _write(uow)
    calls = 0

    async def duplicate(uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        await _write(uow)

    with pytest.raises(IntegrityError):
        await UnitOfWork(store).run(duplicate)
    assert calls == 1

    async def always_locked(uow: UnitOfWork) -> None:
        nonlocal calls
        calls += 1
        raise OperationalError("SELECT", {}, Exception("database is locked"))

    calls = 0
    with pytest.raises(OperationalError):
        await UnitOfWork(store, attempts=2).run(always_locked)
    assert calls == 2
