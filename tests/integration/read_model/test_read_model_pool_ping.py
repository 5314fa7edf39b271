"""A pooled PostgreSQL connection the server dropped is replaced before anyone uses it, unless
it came back to the pool within the alive-bypass window (then one statement meets it)."""

from __future__ import annotations

import asyncio
import uuid

import asyncpg  # type: ignore[import-untyped]
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from devstack.scratch_databases import asyncpg_dsn, create_database, drop_database
from read_model.postgres import ALIVE_BYPASS, PostgresStore

pytestmark = pytest.mark.postgres


async def _backend(store: PostgresStore) -> int:
    async with store.engine.connect() as conn:
        return int((await conn.execute(text("SELECT pg_backend_pid()"))).scalar_one())


async def _terminate(admin: asyncpg.Connection, pid: int) -> None:
    """What a restart or an idle timeout on the server side does to a pooled connection."""
    assert await admin.fetchval("SELECT pg_terminate_backend($1)", pid)
    for _ in range(100):
        if await admin.fetchval("SELECT count(*) = 0 FROM pg_stat_activity WHERE pid = $1", pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"backend {pid} still there")


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
        await _terminate(admin, first)
        await asyncio.sleep(ALIVE_BYPASS)  # as long as any restart takes, at the least

        second = await _backend(store)  # no error: the ping found it dead, the pool reconnected

        assert second != first
        assert await _backend(store) == second
    finally:
        await admin.close()
        await store.dispose()
        await drop_database(postgres_admin_url, name)


async def test_a_connection_back_within_the_window_is_handed_out_untested(
    postgres_admin_url: str,
) -> None:
    name = f"pool_ping_{uuid.uuid4().hex[:8]}"
    url = await create_database(postgres_admin_url, name)
    store = PostgresStore(url, pool_size=1, max_overflow=0, alive_bypass=60)
    admin = await asyncpg.connect(asyncpg_dsn(url))
    try:
        first = await _backend(store)
        await _terminate(admin, first)

        # untested: the statement itself meets the dropped connection, as a database that is
        # down would fail it
        with pytest.raises(DBAPIError) as failed:
            await _backend(store)
        assert failed.value.connection_invalidated

        second = await _backend(store)  # the pool connected anew
        assert second != first
    finally:
        await admin.close()
        await store.dispose()
        await drop_database(postgres_admin_url, name)
