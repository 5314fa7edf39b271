"""The directory of user names (`listed_user_names`, PostgreSQL, revision 0501) holds every
name a listed session has, whatever statement wrote the session.

A search reads the sessions of the names the directory gives for its term
(`admin_api.adapters.session_search`); a listed session whose name is missing from the
directory would be missing from the search. So each way a session can come to be listed with a
name is tried: rows there before the revision (its backfill), a bulk insert, an upsert that
updates a session seen first by its activity (created out of order), a rename, a session
becoming listed again. Names of sessions never listed stay out; activity updates add nothing.
"""

from __future__ import annotations

from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.database import open_store, upgrade_schema

LISTED = "state = 'open' AND created_at IS NOT NULL AND session_type IN ('browser', 'mobile')"
INSERT = (
    "INSERT INTO sessions (tenant_id, session_id, user_name, state, session_type, created_at, "
    "expires_at)"
)
ROWS = """
    SELECT 't' || (i % 3), 's' || i, 'user ' || (i % 500),
           CASE WHEN i % 7 = 0 THEN 'terminated' ELSE 'open' END,
           (ARRAY['browser', 'mobile', 'api_client'])[1 + i % 3],
           CASE WHEN i % 11 = 0 THEN NULL ELSE now() END, now() + interval '1 day'
    FROM generate_series({low}, {high}) AS i
"""
BEFORE = "0401_searched_columns"


async def _names(engine: AsyncEngine) -> tuple[set[tuple[str, str]], set[tuple[str, str]]]:
    """(the names of listed sessions, the directory)."""
    async with engine.connect() as conn:
        listed = await conn.execute(
            text(f"SELECT DISTINCT tenant_id, user_name FROM sessions WHERE {LISTED}")
        )
        kept = await conn.execute(text("SELECT tenant_id, user_name FROM listed_user_names"))
        return {(r[0], r[1]) for r in listed if r[1] is not None}, {(r[0], r[1]) for r in kept}


async def _run(engine: AsyncEngine, *statements: str) -> None:
    async with engine.begin() as conn:
        for statement in statements:
            await conn.execute(text(statement))


async def test_every_name_of_a_listed_session_is_in_the_directory(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store, BEFORE)
        if engine.dialect.name != "postgresql":  # SQLite reads every match: no directory
            await upgrade_schema(store)
            async with engine.connect() as conn:
                tables = await conn.run_sync(lambda c: inspect(c).get_table_names())
            assert "listed_user_names" not in tables
            return
        # sessions there before the revision: its backfill takes exactly the listed names
        await _run(engine, INSERT + ROWS.format(low=1, high=3000))
        await upgrade_schema(store)
        listed, kept = await _names(engine)
        assert len(listed) > 500 and kept == listed

        # one statement inserting thousands of rows, new names among them
        await _run(
            engine,
            INSERT + ROWS.format(low=3001, high=6000).replace("'user '", "'bulk '"),
        )
        listed, kept = await _names(engine)
        assert any(name.startswith("bulk ") for _, name in listed) and kept == listed

        # seen first by its activity (no name, not created), then created by an upsert
        await _run(
            engine,
            "INSERT INTO sessions (tenant_id, session_id, state, session_type, expires_at) "
            "VALUES ('t9', 'late', 'open', 'mobile', now() + interval '1 day')",
        )
        assert ("t9", "Late Comer") not in (await _names(engine))[1]
        await _run(
            engine,
            INSERT + " VALUES ('t9', 'late', 'Late Comer', 'open', 'mobile', now(), "
            "now() + interval '1 day') ON CONFLICT (tenant_id, session_id) DO UPDATE SET "
            "user_name = EXCLUDED.user_name, created_at = EXCLUDED.created_at",
        )
        listed, kept = await _names(engine)
        assert ("t9", "Late Comer") in kept and kept == listed

        # renamed; and a terminated session listed again under a name of its own
        await _run(
            engine,
            "UPDATE sessions SET user_name = 'Renamed Person' WHERE session_id = 's1'",
            "UPDATE sessions SET state = 'open', user_name = 'Back Again' WHERE session_id = 's7'",
        )
        listed, kept = await _names(engine)
        assert {("t1", "Renamed Person"), ("t1", "Back Again")} <= kept
        assert listed <= kept

        # never listed: an API client's name, a terminated session's new name
        await _run(
            engine,
            INSERT + " VALUES ('t0', 'api', 'Api Only', 'open', 'api_client', now(), now())",
            "UPDATE sessions SET state = 'terminated' WHERE session_id = 's14'",
            "UPDATE sessions SET user_name = 'Ended Person' WHERE session_id = 's14'",
        )
        kept = (await _names(engine))[1]
        assert not {n for _, n in kept} & {"Api Only", "Ended Person"}

        # activity on every session adds nothing; ending them all takes no name out
        before = kept
        await _run(
            engine,
            "UPDATE sessions SET expires_at = expires_at + interval '1 minute'",
            "UPDATE sessions SET state = 'terminated'",
        )
        listed, kept = await _names(engine)
        assert not listed and kept == before
    finally:
        await engine.dispose()


async def test_the_lowered_name_matches_as_ilike_does(db_url: str) -> None:
    # a term the trigram index cannot look up is matched with LIKE on the name lowered once
    # (revision 0701): the same names ILIKE finds, letters that lower oddly included
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store)
        if engine.dialect.name != "postgresql":
            return
        names = ["Zoë", "ZOË", "Björn ÖST", "İlker", "Straße", "STRASSE", "\u212aelvin", "Ω x"]
        await _run(
            engine,
            *(
                INSERT + f" VALUES ('t', 's{i}', '{name}', 'open', 'browser', now(), now())"
                for i, name in enumerate(names)
            ),
        )
        async with engine.connect() as conn:
            for pattern in ("%ë%", "%Ë%", "%ö%", "%i%", "%ß%", "%k%", "%ω%", "%\\%%", "%"):
                found = {}
                for how in ("user_name ILIKE :p", "user_name_folded LIKE lower(:p)"):
                    rows = await conn.execute(
                        text(f"SELECT user_name FROM listed_user_names WHERE {how}"),
                        {"p": pattern},
                    )
                    found[how] = {r[0] for r in rows}
                ilike, folded = found.values()
                assert ilike == folded, pattern
                assert ilike or pattern == "%\\%%", pattern
    finally:
        await engine.dispose()
