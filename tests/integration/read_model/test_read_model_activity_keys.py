"""Revision 1101 puts each session's coarse last activity beside its id's keys, in one index
(`read_model.listing_indexes.KEYS_INDEX`; PostgreSQL only), and back.

The index replaces revision 0801's, built concurrently after the migrations: until it is
valid the old one must answer every lookup by the id's keys, and writes go on. A session's
bucket must be its ten minutes since 1970 whatever the connection's time zone, or the index
(built by one connection) and a search (another) would disagree.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from polling import until
from read_model.database import open_store, upgrade_schema
from read_model.listing_indexes import (
    ACTIVITY_BUCKET_SECONDS,
    ID_KEYS_INDEX_NAME,
    INFINITE_BUCKET,
    KEYS_INDEX_NAME,
)
from read_model.online_indexes import build_online_indexes
from schema_steps import (
    as_before_activity_keys,
    build_waiting,
    downgrade_schema,
    insert_sessions,
    old_snapshot,
    session_id_indexes,
    through_the_keys,
)

BEFORE = "1001_search_budgets"


async def _functions(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT proname FROM pg_proc WHERE proname LIKE 'session_activity_%'")
        )
        return {str(name) for (name,) in found}


async def test_the_revision_replaces_the_id_keys_index_and_lookups_keep_one_throughout(
    db_url: str,
) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, BEFORE)
        if engine.dialect.name != "postgresql":  # SQLite has no search index: nothing to do
            await upgrade_schema(store)
            assert await build_online_indexes(store) == []
            await downgrade_schema(engine, BEFORE)
            return
        await as_before_activity_keys(engine)
        handles = await insert_sessions(engine, "t1", [f"c-{i}" for i in range(200)])
        async with engine.connect() as conn:  # as a live database is: its GIN vacuumed
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text("VACUUM (ANALYZE) sessions"))
        await upgrade_schema(store, online_indexes=False)
        assert await _functions(engine) == {
            "session_activity_bucket",
            "session_activity_keys",
            "session_activity_window",
        }
        assert await session_id_indexes(engine) == {ID_KEYS_INDEX_NAME: True}

        async with old_snapshot(engine) as holder:
            build = asyncio.create_task(build_online_indexes(store))
            try:
                await until(lambda: build_waiting(engine), within=30, what="the build waiting")
                # meanwhile the old index answers, and sessions are written
                piece = handles[3][6:11].swapcase()
                expected = sorted(h for h in handles if piece.lower() in h.lower())
                found = await through_the_keys(engine, "t1", piece, ID_KEYS_INDEX_NAME)
                assert expected and found == expected
                async with asyncio.timeout(10):
                    written = await insert_sessions(engine, "t1", ["written-during-the-build"])
                    async with engine.begin() as conn:
                        await conn.execute(text("UPDATE sessions SET last_activity_at = now()"))
                assert not build.done()
                await holder.execute(text("COMMIT"))
                async with asyncio.timeout(60):
                    done = await build
            finally:
                build.cancel()
        assert done == [f"built {KEYS_INDEX_NAME}", f"dropped {ID_KEYS_INDEX_NAME}"]
        assert await session_id_indexes(engine) == {KEYS_INDEX_NAME: True}
        piece = written[0][8:13]
        assert written[0] in await through_the_keys(engine, "t1", piece)

        await downgrade_schema(engine, BEFORE)
        assert await session_id_indexes(engine) == {ID_KEYS_INDEX_NAME: True}
        assert await _functions(engine) == set()
        assert sorted(await through_the_keys(engine, "t1", piece, ID_KEYS_INDEX_NAME)) == sorted(
            h for h in [*handles, *written] if piece.lower() in h.lower()
        )
    finally:
        await store.dispose()


async def test_a_sessions_bucket_is_its_ten_minutes_since_1970_in_any_time_zone(
    db_url: str,
) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store)
        if engine.dialect.name != "postgresql":
            assert store.search_walk is None  # one pass: no buckets to compute
            return
        edge = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)  # a bucket's first instant
        moments = [
            edge,
            edge - timedelta(microseconds=1),
            edge + timedelta(seconds=ACTIVITY_BUCKET_SECONDS) - timedelta(microseconds=1),
            datetime(1969, 12, 31, 23, 55, tzinfo=UTC),  # before 1970: floor, not truncation
            datetime(2026, 10, 25, 0, 59, 59, tzinfo=UTC),  # around a change of summer time
        ]
        expected = [int(m.timestamp() // ACTIVITY_BUCKET_SECONDS) for m in moments]
        for zone in ("UTC", "Asia/Kathmandu", "America/St_Johns", "Europe/Berlin"):
            async with engine.connect() as conn:
                await conn.execute(text(f"SET TimeZone = '{zone}'"))
                found = [
                    (
                        await conn.execute(
                            text("SELECT session_activity_bucket(:at)"), {"at": moment}
                        )
                    ).scalar_one()
                    for moment in moments
                ]
                # the keys of a tenant's bucket, and of its window, agree in any zone too
                same = await conn.execute(
                    text(
                        "SELECT session_activity_keys('t1', :at) <@ "
                        "session_activity_window('t1', session_activity_bucket(:at), "
                        "session_activity_bucket(:at))"
                    ),
                    {"at": edge},
                )
                assert same.scalar_one() is True
            assert found == expected, zone
        # an infinite time (a hostile `9999-12-31T23:59:59.999999Z` is stored as one) has a
        # bucket too, after (before) every finite one's, never an error
        async with engine.connect() as conn:
            edges = await conn.execute(
                text(
                    "SELECT session_activity_bucket('-infinity'), session_activity_bucket(:at), "
                    "session_activity_bucket('infinity'), "
                    "session_activity_keys('t1', 'infinity') IS NOT NULL"
                ),
                {"at": datetime.max.replace(tzinfo=UTC) - timedelta(days=1)},
            )
            below, finite, above, keyed = edges.one()
        assert below == -INFINITE_BUCKET < finite < above == INFINITE_BUCKET and keyed
    finally:
        await store.dispose()
