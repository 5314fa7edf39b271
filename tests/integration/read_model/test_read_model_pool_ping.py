"""A pooled PostgreSQL connection the server dropped is replaced before anyone uses it."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text

from devstack.scratch_databases import asyncpg_dsn, create_database, drop_database
from read_model.postgres import PostgresStore

pytestmark = pytest.mark.postgres


async def _backend(store: PostgresStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def test_a_connection_the_server_dropped_is_replaced_on_checkout(
    postgres_admin_url: str,
) -> None:
    name = f"pool_ping_{uuid.uuid4().hex[:8]}"
    url = await create_database(postgres_admin_url, name)
    store = PostgresStore(url, pool_size=1, max_overflow=0)
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        first = await _backend(store)
        assert await _backend(store) == first  # pooled: the same server process again
        # what a restart or an idle timeout on the server side does to a pooled connection
        assert await admin.fetchval("SELECT pg_terminate_backend($1)", first)
        for _ in range(100):
            gone = await admin.fetchval(
                "SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1", first
            )
            if gone:
                break
            await asyncio.sleep(0.05)
        assert gone

        second = await _backend(store)  # no error: the ping found it dead, the pool reconnected

        assert second != first
        assert await _backend(store) == second
    finally:
        await admin.close()
        await store.dispose()
        await drop_database(postgres_admin_url, name)
