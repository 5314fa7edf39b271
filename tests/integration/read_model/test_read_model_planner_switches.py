"""A search's steps switch PostgreSQL's planner (`Store.search`: bitmaps, no sort index walked;
`Store.walk`: the sort index, no bitmap) for the rest of their transaction. A step of the kind
the transaction already has sends nothing: each switch is a round trip. The switches are the
transaction's only: the next transaction sets them again, and none outlives its transaction."""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager

import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model import postgres
from read_model.database import open_store, upgrade_schema
from read_model.store import Store


async def test_a_step_of_the_kind_already_set_sends_no_switch(db_url: str) -> None:
    store = open_store(db_url)
    sent: list[str] = []

    def record(_conn: object, _cursor: object, statement: str, *_: object) -> None:
        if "set_config" in statement:
            sent.append(statement)

    postgres = store.engine.dialect.name == "postgresql"

    async def bitmaps(conn: object) -> str | None:
        if not postgres:
            return None
        return str((await conn.execute(text("SHOW enable_bitmapscan"))).scalar_one())  # type: ignore[attr-defined]

    try:
        await upgrade_schema(store)
        event.listen(store.engine.sync_engine, "before_cursor_execute", record)
        seen = []
        async with store.engine.connect() as conn, store.one_read(conn) as reading:
            for searching in (True, True, False, False, True):
                step = store.search(reading, capped=True) if searching else store.walk(reading)
                async with step:
                    seen.append(await bitmaps(reading))
        # the next transaction, on the same pooled connection: nothing carried over
        async with store.engine.connect() as conn:
            before = await bitmaps(conn)
            await conn.rollback()
            async with store.one_read(conn) as reading, store.walk(reading):
                seen.append(await bitmaps(reading))
            after = await bitmaps(conn)
        event.remove(store.engine.sync_engine, "before_cursor_execute", record)
        if not postgres:  # SQLite plans on its own: nothing to switch
            assert sent == []
            return
        assert seen == ["on", "on", "off", "off", "on", "off"]
        assert len(sent) == 4  # search, walk, search; walk in the next transaction
        assert before == after == "on"
    finally:
        await store.dispose()


async def test_a_capped_search_plans_no_parallel_workers_wherever_it_runs(db_url: str) -> None:
    # every read of the bounded path stops at a cap, and the planner, which takes a term's
    # session id keys for 0.5% of the rows, planned two workers for a thousand matches (13.7
    # against 2.8 ms at ten million sessions); an uncapped search (an exact count of a broad
    # term) keeps the server's workers. The caller says which: not whether it runs as a step
    # of a transaction (which decided it before)
    store = open_store(db_url)
    if store.engine.dialect.name != "postgresql":
        await store.dispose()
        return  # SQLite has no parallel workers

    async def workers(conn: object) -> str:
        shown = await conn.execute(text("SHOW max_parallel_workers_per_gather"))  # type: ignore[attr-defined]
        return str(shown.scalar_one())

    try:
        await upgrade_schema(store)
        async with store.engine.connect() as conn:
            server = await workers(conn)
            await conn.rollback()
            async with store.one_read(conn) as reading, store.search(reading, capped=True):
                capped_step = await workers(reading)
            async with store.one_read(conn) as reading, store.search(reading, capped=False):
                uncapped_step = await workers(reading)
            async with store.search(conn, capped=True):
                capped_alone = await workers(conn)
            async with store.search(conn, capped=False):
                uncapped_alone = await workers(conn)
        assert server != "0"
        assert capped_step == capped_alone == "0"
        assert uncapped_step == uncapped_alone == server
    finally:
        await store.dispose()


async def test_a_keyed_walk_plans_once_and_every_other_step_plans_each_query_again(
    db_url: str,
) -> None:
    # a keyed step's statements are planned once per connection (a generic plan: the merge's
    # planning cost twice its execution at ten million sessions); a step after it in the same
    # transaction, walk or search, plans every query for its values again, as the connection
    # does outside steps (the admin API's connections: `listing`): a walk's pattern planned
    # generically took `e` to 233 ms
    store = open_store(db_url, listing=True)
    if store.engine.dialect.name != "postgresql":
        await store.dispose()
        return  # SQLite keeps no plans across statements to choose between

    async def mode(conn: object) -> str:
        return str((await conn.execute(text("SHOW plan_cache_mode"))).scalar_one())  # type: ignore[attr-defined]

    try:
        await upgrade_schema(store)
        seen = []
        async with store.engine.connect() as conn:
            outside = await mode(conn)
            await conn.rollback()
            async with store.one_read(conn) as reading:
                for kind in ("keyed", "walk", "keyed", "capped", "keyed", "exact"):
                    async with _step(store, reading, kind):
                        seen.append(await mode(reading))
            async with store.walk(conn, keyed=True):
                alone = await mode(conn)
            after = await mode(conn)
        custom, generic = "force_custom_plan", "force_generic_plan"
        assert outside == after == custom
        assert seen == [generic, custom, generic, custom, generic, custom]
        assert alone == generic
    finally:
        await store.dispose()


async def test_the_admin_apis_connections_keep_their_timeout_and_planning_for_life(
    db_url: str,
) -> None:
    # every query of the admin API is bounded by the statement timeout (a search the indexes
    # cannot bound stops there) and planned for its values. Both were once `SET` inside a
    # new connection's first transaction, which its return to the pool rolled back: from its
    # second request on, a connection had no timeout and planned as the server does
    store = open_store(db_url, listing=True, pool_size=1, max_overflow=0)
    if store.engine.dialect.name != "postgresql":
        await store.dispose()
        return  # SQLite has neither
    shown = text(
        "SELECT current_setting('statement_timeout'), current_setting('plan_cache_mode'), "
        "pg_backend_pid()"
    )
    seen = []
    try:
        # the first request's transaction reads and ends by closing: a rollback
        for ending in ("none", "rollback", "commit", "error", "search"):
            async with store.engine.connect() as conn:
                seen.append((await conn.execute(shown)).one())
                if ending == "commit":
                    await conn.commit()
                elif ending == "rollback":
                    await conn.rollback()
                elif ending == "error":
                    with pytest.raises(DBAPIError):
                        await conn.execute(text("SELECT 1 / 0"))
                elif ending == "search":
                    await conn.rollback()
                    async with store.one_read(conn) as reading, store.walk(reading, keyed=True):
                        await reading.execute(text("SELECT 1"))
        async with store.engine.connect() as conn:
            seen.append((await conn.execute(shown)).one())
        registry = open_store(db_url)
        try:
            async with registry.engine.connect() as conn:
                registry_timeout = (await conn.execute(shown)).one()[0]
        finally:
            await registry.dispose()
    finally:
        await store.dispose()
    assert len({pid for *_, pid in seen}) == 1  # one pooled connection throughout
    assert [(timeout, mode) for timeout, mode, _ in seen] == [("15s", "force_custom_plan")] * 6
    assert registry_timeout == "0"  # the registry's long statements (a rebuild) are not cut


async def test_an_exact_count_may_take_longer_than_every_other_step(db_url: str) -> None:
    # an exact count reads every match of a broad term (9-24 s at four million sessions of a
    # tenant, cold): its step allows `EXACT_COUNT_TIMEOUT`; every other step, and a step after
    # it in the same transaction, the connections' `STATEMENT_TIMEOUT` again
    store = open_store(db_url, listing=True)
    if store.engine.dialect.name != "postgresql":
        await store.dispose()
        return  # SQLite has no statement timeout

    async def limit(conn: object) -> str:
        return str((await conn.execute(text("SHOW statement_timeout"))).scalar_one())  # type: ignore[attr-defined]

    seen = []
    try:
        async with store.engine.connect() as conn, store.one_read(conn) as reading:
            for kind in ("exact", "capped", "exact", "walk", "exact", "keyed"):
                async with _step(store, reading, kind):
                    seen.append(await limit(reading))
    finally:
        await store.dispose()
    assert postgres.EXACT_COUNT_TIMEOUT == "60s" and postgres.STATEMENT_TIMEOUT == "15s"
    assert seen == ["1min", "15s", "1min", "15s", "1min", "15s"]


def _step(store: Store, conn: AsyncConnection, kind: str) -> AbstractAsyncContextManager[None]:
    """A search's step of `kind`: `walk`, `keyed` (a keyed walk), `capped` (a bounded search's
    step) or `exact` (an exact count's)."""
    if kind in ("walk", "keyed"):
        return store.walk(conn, keyed=kind == "keyed")
    return store.search(conn, capped=kind == "capped")
