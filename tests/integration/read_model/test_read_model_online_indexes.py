"""The indexes built concurrently after the migrations (`read_model.online_indexes`).

Revision 0801's index of the session id's keys took 16 minutes to build at ten million
sessions; built in the migrations' transaction it held off every write to `sessions` (new
sessions, activity, terminations) for that long. Built concurrently, writes go on: a test
holds the build at its last wait and writes meanwhile. A build that stopped half-way leaves
an invalid index, which the next run builds again.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from polling import until
from read_model.database import open_store, upgrade_schema
from read_model.listing_indexes import KEYS_INDEX_NAME
from read_model.online_indexes import build_online_indexes
from schema_steps import (
    build_waiting,
    drop_keys_index,
    insert_sessions,
    old_snapshot,
    session_id_indexes,
    through_the_keys,
)

BEFORE = "0701_folded_user_names"
KEYS = KEYS_INDEX_NAME
TRIGRAM = "ix_sessions_trgm_session_id"


async def test_the_keys_index_is_built_while_sessions_are_written(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, BEFORE)
        if engine.dialect.name != "postgresql":  # SQLite has no search index: nothing to build
            await upgrade_schema(store)
            assert await build_online_indexes(store) == []
            return
        await drop_keys_index(engine)  # as a database made before revision 0801 has none
        await insert_sessions(engine, "t1", [f"c-{i}" for i in range(200)])
        await upgrade_schema(store, online_indexes=False)
        assert await session_id_indexes(engine) == {
            TRIGRAM: True
        }  # the search keeps its index so far

        # A transaction with a snapshot from before the build: CREATE INDEX CONCURRENTLY
        # waits for it before the index becomes valid, which holds the build while we write.
        async with old_snapshot(engine) as holder:
            build = asyncio.create_task(build_online_indexes(store))
            try:
                await until(lambda: build_waiting(engine), within=30, what="the build waiting")
                async with asyncio.timeout(10):  # a plain CREATE INDEX would hold these off
                    written = await insert_sessions(engine, "t1", ["written-during-the-build"])
                    async with engine.begin() as conn:
                        await conn.execute(text("UPDATE sessions SET last_activity_at = now()"))
                assert not build.done()  # the writes went through while the index was built
                await holder.execute(text("COMMIT"))
                async with asyncio.timeout(60):
                    done = await build
            finally:
                build.cancel()
        assert done == [f"built {KEYS}", f"dropped {TRIGRAM}"]
        assert await session_id_indexes(engine) == {KEYS: True}  # valid, and the trigram index gone

        # the session written during the build is in the index
        piece = written[0][5:12].swapcase()
        assert written[0] in await through_the_keys(engine, "t1", piece)
        assert await build_online_indexes(store) == []  # nothing left to do
    finally:
        await store.dispose()


async def test_an_index_left_invalid_by_a_stopped_build_is_built_again(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store)
        if engine.dialect.name != "postgresql":
            assert await build_online_indexes(store) == []
            return
        handles = await insert_sessions(engine, "t1", [f"c-{i}" for i in range(200)])
        await drop_keys_index(engine)
        # A concurrent build that fails half-way leaves its index behind, invalid: here a
        # unique index of the same name over the rows of one tenant.
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            failed = False
            try:
                await conn.execute(
                    text(f"CREATE UNIQUE INDEX CONCURRENTLY {KEYS} ON sessions (tenant_id)")
                )
            except Exception:
                failed = True
            assert failed
        assert await session_id_indexes(engine) == {KEYS: False}

        assert await build_online_indexes(store) == [f"rebuilt {KEYS}"]
        assert await session_id_indexes(engine) == {KEYS: True}
        async with engine.connect() as conn:
            definition = (
                await conn.execute(
                    text("SELECT pg_get_indexdef(to_regclass(:name))"), {"name": KEYS}
                )
            ).scalar_one()
        assert "USING gin (session_id_keys(" in definition
        piece = handles[1][3:9]
        expected = sorted(h for h in handles if piece.lower() in h.lower())
        assert expected and sorted(await through_the_keys(engine, "t1", piece)) == expected
    finally:
        await store.dispose()


async def test_a_database_below_the_head_revision_is_left_alone(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, BEFORE)
        assert await build_online_indexes(store) == []
        if engine.dialect.name == "postgresql":  # the keys' function comes with revision 0801
            await drop_keys_index(engine)
            assert await build_online_indexes(store) == []
            assert await session_id_indexes(engine) == {TRIGRAM: True}
    finally:
        await store.dispose()


async def test_a_build_cancelled_half_way_is_left_invalid_and_built_by_the_next_run(
    db_url: str,
) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, BEFORE)
        if engine.dialect.name != "postgresql":
            return
        await drop_keys_index(engine)
        handles = await insert_sessions(engine, "t1", [f"c-{i}" for i in range(200)])
        await upgrade_schema(store, online_indexes=False)
        async with old_snapshot(engine) as holder:
            build = asyncio.create_task(build_online_indexes(store))
            await until(lambda: build_waiting(engine), within=30, what="the build waiting")
            build.cancel()  # as a registry stopping cancels its background build
            cancelled = False
            try:
                await build
            except asyncio.CancelledError:
                cancelled = True
            assert cancelled  # cancelled as such, not turned into another error
            await holder.execute(text("COMMIT"))
        assert await session_id_indexes(engine) == {KEYS: False, TRIGRAM: True}

        # the lock went with the cancelled build's connection: the next run is not held off
        async with asyncio.timeout(60):
            assert await build_online_indexes(store) == [f"rebuilt {KEYS}", f"dropped {TRIGRAM}"]
        assert await session_id_indexes(engine) == {KEYS: True}
        piece = handles[0][4:10]
        expected = sorted(h for h in handles if piece.lower() in h.lower())
        assert sorted(await through_the_keys(engine, "t1", piece)) == expected
    finally:
        await store.dispose()
