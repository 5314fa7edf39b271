"""Revision 0801 replaces the session id trigram index with the tenant's keys of each id
(`read_model.listing_indexes.KEYS_FUNCTION`; PostgreSQL only), and back.

A database migrated from before the revision must end with exactly the index a new one has
(and without the translated id's statistics), and a lookup through it must find the tenant's
ids holding a piece, whatever their case, and no other tenant's. The index itself is built
concurrently after the revision (`read_model.online_indexes`), which `upgrade_schema` runs.
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.database import open_store, upgrade_schema
from read_model.listing_indexes import ID_KEYS_INDEX_NAME, KEYS_INDEX_NAME
from schema_steps import downgrade_schema, drop_keys_index, insert_sessions, through_the_keys

BEFORE = "0701_folded_user_names"


async def _objects(engine: AsyncEngine) -> set[str]:
    """The session id indexes and statistics objects there are."""
    async with engine.connect() as conn:
        found = await conn.execute(
            text(
                "SELECT indexname FROM pg_indexes WHERE indexname LIKE '%session_id%'"
                " OR indexname LIKE '%keys%'"
                " UNION SELECT stxname FROM pg_statistic_ext"
            )
        )
        return {str(name) for (name,) in found}


async def test_the_revision_replaces_the_trigram_index_with_the_tenants_keys(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, BEFORE)
        if engine.dialect.name != "postgresql":  # SQLite has no search index: nothing to do
            await upgrade_schema(store)
            return
        await drop_keys_index(engine)  # as a database made before the revision has none
        credentials = [f"c-{i}" for i in range(300)]
        ids = {t: await insert_sessions(engine, t, credentials) for t in ("t1", "t2")}
        before = await _objects(engine)
        assert "ix_sessions_trgm_session_id" in before
        assert "st_sessions_session_id_text" in before

        await upgrade_schema(store)
        async with engine.begin() as conn:
            await conn.execute(text("ANALYZE sessions"))  # real estimates
        after = await _objects(engine)
        assert KEYS_INDEX_NAME in after
        assert not {"ix_sessions_trgm_session_id", "st_sessions_session_id_text"} & after

        # a piece of an id of t2, in the other case: found in t2, and never in t1
        piece = ids["t2"][7][10:14].swapcase()
        expected = sorted(i for i in ids["t2"] if piece.lower() in i.lower())
        assert expected and await through_the_keys(engine, "t2", piece) == expected
        in_t1 = sorted(i for i in ids["t1"] if piece.lower() in i.lower())
        assert await through_the_keys(engine, "t1", piece) == in_t1

        await downgrade_schema(engine, BEFORE)
        back = await _objects(engine)
        assert {"ix_sessions_trgm_session_id", "st_sessions_session_id_text"} <= back
        assert not {KEYS_INDEX_NAME, ID_KEYS_INDEX_NAME} & back
    finally:
        await store.dispose()


async def test_a_term_is_looked_up_by_its_first_and_last_keys_from_revision_1201(
    db_url: str,
) -> None:
    # a term's keys are two of the keys `session_id_keys` gives it (revision 1201), so a term
    # and an id are hashed alike: a key of its own would find nothing
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, "1101_activity_keys")
        if engine.dialect.name != "postgresql":
            await upgrade_schema(store)
            return
        assert not await _term_keys_exist(engine)
        await upgrade_schema(store)
        assert await _term_keys_exist(engine)
        terms = ["", "a", "ab", "abc", "ABCD", "aBcDe", "x-y_z9Q", "ÄbÇdÉ", "jennifer", "-_" * 20]
        async with engine.connect() as conn:
            for term in terms:
                found = await conn.execute(
                    text("SELECT session_id_keys('t1', :term), session_id_term_keys('t1', :term)"),
                    {"term": term},
                )
                every, chosen = found.one()
                assert sorted(chosen) == sorted({*every[:1], *every[-1:]}), term
                assert len(every) == max(0, len(term) - 2), term
        await downgrade_schema(engine, "1101_activity_keys")
        assert not await _term_keys_exist(engine)
    finally:
        await store.dispose()


async def _term_keys_exist(engine: AsyncEngine) -> bool:
    async with engine.connect() as conn:
        found = await conn.execute(
            text("SELECT count(*) FROM pg_proc WHERE proname = 'session_id_term_keys'")
        )
        return bool(found.scalar_one())
