"""A registry migrating on start builds the concurrent indexes in the background
(`read_model.online_indexes`): it consumes while the session id keys index is built."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest
from registry_helpers import StartRegistry, created, session_rows, sid
from sqlalchemy import text

from polling import until
from read_model.database import open_store, upgrade_schema
from read_model.listing_indexes import KEYS_INDEX_NAME
from schema_steps import drop_keys_index, old_snapshot, session_id_indexes

pytestmark = pytest.mark.kafka

KEYS = KEYS_INDEX_NAME


async def test_a_registry_consumes_while_it_builds_the_keys_index(
    start_registry: StartRegistry, send: Callable[..., Awaitable[None]], db_url: str
) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, "0701_folded_user_names")
        if engine.dialect.name != "postgresql":  # nothing is built concurrently on SQLite
            return
        await drop_keys_index(engine)  # a database made before revision 0801

        async def valid() -> bool:
            return (await session_id_indexes(engine)).get(KEYS, False)

        # an old snapshot holds the concurrent build before the index becomes valid; taken by
        # reading another table: a reader of sessions holds the start at revision 1401's
        # ALTER until it ends (politely: test_read_model_polite_ddl.py)
        async with old_snapshot(engine, "consumer_positions") as holder:
            async with asyncio.timeout(30):  # a start that built it first would wait for us
                registry = await start_registry(migrate_on_start=True)
            await send(created("during-the-build"))
            await registry.wait_until_idle(30)
            assert sid("during-the-build") in await session_rows(registry)
            assert not await valid()
            await holder.execute(text("COMMIT"))
        await until(valid, within=60, what="the keys index built by the registry")
    finally:
        await store.dispose()
