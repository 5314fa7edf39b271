"""Pool sizes are settings: what a service is configured with is what its engine's pool gets."""

from __future__ import annotations

from sqlalchemy.pool import QueuePool

from read_model.database import open_store

URL = "postgresql+asyncpg://u:p@127.0.0.1:1/db"  # never connected


async def test_pool_size_and_overflow_reach_the_pool() -> None:
    store = open_store(URL, pool_size=3, max_overflow=1)
    try:
        pool = store.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool.size() == 3
        assert pool._max_overflow == 1
    finally:
        await store.dispose()


async def test_overflow_defaults_to_the_pool_size() -> None:
    store = open_store(URL, pool_size=4)
    try:
        pool = store.engine.pool
        assert isinstance(pool, QueuePool)
        assert pool._max_overflow == 4
    finally:
        await store.dispose()
