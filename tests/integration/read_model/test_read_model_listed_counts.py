"""The trigger-kept `listed_session_counts` (PostgreSQL) stay exact under bulk statements.

Revision 0102 keeps them per statement (transition tables) instead of per row; a statement
changing thousands of rows, an upsert that both inserts and updates, deletes, and a downgrade
to the per-row triggers and back all leave the counts equal to a count of the rows. The test
works at revision 0102 (0201, contract v2, cannot be downgraded: a handle has no inverse), then
upgrades to the head, whose 0201 rewrites every session id in one statement per table.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.database import open_store, upgrade_schema
from schema_steps import downgrade_schema

LISTED = "state = 'open' AND created_at IS NOT NULL AND session_type IN ('browser', 'mobile')"
ROWS = """
    SELECT 't' || (i % 3), 's' || i, CASE WHEN i % 7 = 0 THEN 'terminated' ELSE 'open' END,
           (ARRAY['browser', 'mobile', 'api_client'])[1 + i % 3],
           CASE WHEN i % 11 = 0 THEN NULL ELSE now() END, now() + interval '1 day'
    FROM generate_series({low}, {high}) AS i
"""
INSERT = "INSERT INTO sessions (tenant_id, session_id, state, session_type, created_at, expires_at)"
COUNTS_PER_STATEMENT = "0102_counts_per_statement"


async def _counts(engine: AsyncEngine) -> tuple[dict[tuple[str, str], int], ...]:
    async with engine.connect() as conn:
        actual = await conn.execute(
            text(
                f"SELECT tenant_id, session_type, count(*) FROM sessions WHERE {LISTED} "
                "GROUP BY tenant_id, session_type"
            )
        )
        kept = await conn.execute(
            text("SELECT tenant_id, session_type, sessions FROM listed_session_counts")
        )
        return (
            {(r[0], r[1]): r[2] for r in actual},
            {(r[0], r[1]): r[2] for r in kept if r[2] != 0},
        )


async def _run(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def test_counts_stay_exact_under_bulk_statements(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, COUNTS_PER_STATEMENT)
        if engine.dialect.name != "postgresql":  # SQLite counts rows instead: no table to keep
            await upgrade_schema(store)
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            assert "listed_session_counts" not in tables
            return
        await _run(engine, INSERT + ROWS.format(low=1, high=6000))
        actual, kept = await _counts(engine)
        assert sum(actual.values()) > 2000 and kept == actual
        # one statement ending a whole tenant; another touching rows without moving them
        await _run(
            engine,
            "UPDATE sessions SET state = 'terminated', ended_at = now() WHERE tenant_id = 't0'",
            "UPDATE sessions SET last_activity_at = now()",
        )
        actual, kept = await _counts(engine)
        assert ("t0", "browser") not in actual and kept == actual
        # an upsert inserting new rows and updating old ones, in one transaction with a delete
        await _run(
            engine,
            INSERT
            + ROWS.format(low=4000, high=9000)
            + " ON CONFLICT (tenant_id, session_id) DO UPDATE SET state = 'open', "
            "session_type = EXCLUDED.session_type",
            "DELETE FROM sessions WHERE tenant_id = 't2' AND session_id LIKE '%3'",
        )
        actual, kept = await _counts(engine)
        assert kept == actual
        await downgrade_schema(engine, "0101_admin_api")
        await _run(engine, "UPDATE sessions SET state = 'open' WHERE session_id LIKE '%5'")
        actual, kept = await _counts(engine)
        assert kept == actual
        await upgrade_schema(store, COUNTS_PER_STATEMENT)
        actual, kept = await _counts(engine)
        assert kept == actual
        await upgrade_schema(store)  # contract v2: every session id becomes its handle
        after_v2, kept = await _counts(engine)
        assert after_v2 == actual and kept == actual
        await _run(engine, "UPDATE sessions SET state = 'terminated' WHERE tenant_id = 't1'")
        actual, kept = await _counts(engine)
        assert ("t1", "mobile") not in actual and kept == actual
    finally:
        await engine.dispose()
