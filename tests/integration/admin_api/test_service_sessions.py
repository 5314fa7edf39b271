"""The list, export and detail use cases without HTTP: filters, sort, cursors and totals, the
tenant's sessions only; on both backends."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, cast

import pytest
from admin_api_support import NOW, OTHER_TENANT, TENANT, handle, insert, session_row
from sqlalchemy import event, text
from sqlalchemy.pool import QueuePool

from admin_api.adapters import session_listing, session_search
from admin_api.auth import EDIT_USER_SESSIONS, Admin
from admin_api.domain.cursors import CursorCodec
from admin_api.domain.errors import InvalidParameter, NotFound
from admin_api.service_layer import sessions as service
from admin_api.service_layer.sessions import (
    ExportRequest,
    PageRequest,
    export_sessions,
    list_sessions,
    session_detail,
)
from admin_api.service_layer.tenant_slots import TenantSlots
from read_model.store import Store
from read_model.tables import session_history
from session_contracts.models import SessionFilter, SessionType

ADMIN = Admin("admin-1", TENANT, frozenset({EDIT_USER_SESSIONS}))
OTHER_ADMIN = Admin("admin-9", OTHER_TENANT, frozenset({EDIT_USER_SESSIONS}))
CURSORS = CursorCodec(b"k" * 32)
MOBILE = SessionFilter(session_type=[SessionType.mobile])
B1, X1, GONE, ALICE, NOPE = (handle(c) for c in ("b-1", "x-1", "gone", "m-alice", "nope"))
THEIRS = handle("o-1", OTHER_TENANT)


def clock() -> datetime:
    return NOW


def ids(rows: list[Mapping[str, Any]]) -> list[str]:
    return [str(r["session_id"]) for r in rows]


async def seed(store: Store) -> list[str]:
    """Five mobile sessions of TENANT (returned by user name), and what the list never shows."""
    names = ["Erin", "alice", "Bob", "dave", "Carol"]
    await insert(
        store.engine,
        [
            *(
                session_row(session_id=handle(f"m-{n}"), user_name=n, session_type="mobile")
                for n in names
            ),
            session_row(session_id=B1, user_name="Zed"),
            session_row(session_id=THEIRS, session_type="mobile", tenant_id=OTHER_TENANT),
            session_row(session_id=X1, session_type="mobile", expires_at=NOW),
        ],
    )
    return [handle(f"m-{n}") for n in sorted(names)]  # the byte order the list sorts text by


def count_builds(store: Store, monkeypatch: pytest.MonkeyPatch) -> Callable[[], int]:
    """How many first-page statements the store has built from now on (each builds its
    count, `Store.active_count`, once)."""
    counted = 0
    count = store.active_count

    def counting(*args: Any) -> Any:
        nonlocal counted
        counted += 1
        return count(*args)

    monkeypatch.setattr(store, "active_count", counting)
    return lambda: counted


async def test_pages_follow_the_filter_and_sort_and_carry_the_total(store: Store) -> None:
    expected = await seed(store)
    request = PageRequest(MOBILE, sort="user_name", limit=2)
    seen: list[str] = []
    totals: list[int] = []
    while True:
        page = await list_sessions(request, ADMIN, store, CURSORS, clock)
        seen += ids(page.rows)
        totals.append(page.total)
        if page.next_cursor is None:
            break
        request = PageRequest(MOBILE, sort="user_name", limit=2, cursor=page.next_cursor)
    assert seen == expected and totals == [5, 5, 5]

    descending = await list_sessions(
        PageRequest(MOBILE, "-user_name", 10), ADMIN, store, CURSORS, clock
    )
    assert ids(descending.rows) == expected[::-1] and descending.next_cursor is None
    everything = await list_sessions(PageRequest(SessionFilter()), ADMIN, store, CURSORS, clock)
    assert everything.total == 6 and THEIRS not in ids(everything.rows)
    theirs = await list_sessions(PageRequest(SessionFilter()), OTHER_ADMIN, store, CURSORS, clock)
    assert ids(theirs.rows) == [THEIRS] and theirs.total == 1


async def test_later_pages_answer_the_moment_their_carried_total_was_read(store: Store) -> None:
    """A later page carries the first page's total: its `as_of` was its own reading's moment,
    and a termination confirmed from it ended sessions created between the two, uncounted (a
    review, stop 70). It answers the first page's moment now."""
    await seed(store)
    moments = iter([NOW, NOW + timedelta(minutes=5), NOW + timedelta(minutes=9)])
    first = await list_sessions(
        PageRequest(MOBILE, sort="user_name", limit=2), ADMIN, store, CURSORS, lambda: next(moments)
    )
    assert first.as_of == NOW and first.next_cursor is not None
    later = await list_sessions(
        PageRequest(MOBILE, sort="user_name", limit=2, cursor=first.next_cursor),
        ADMIN,
        store,
        CURSORS,
        lambda: next(moments),
    )
    assert (later.total, later.as_of) == (5, NOW)


async def test_a_first_page_and_its_total_are_read_in_one_statement(store: Store) -> None:
    # one statement is one snapshot: the page and its count agree without a transaction (on
    # PostgreSQL none is begun: BEGIN and COMMIT were two of a first page's five round trips)
    expected = await seed(store)
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    def log_simple_queries(dbapi_connection: Any, record: Any, *_: Any) -> None:
        # what asyncpg sends outside prepared statements: BEGIN, COMMIT, ROLLBACK
        driver: Any = getattr(dbapi_connection, "driver_connection", None)
        if hasattr(driver, "add_query_logger") and not record.info.get("logged"):
            record.info["logged"] = True
            driver.add_query_logger(lambda query: sent.append(query.query))

    sync_engine = store.engine.sync_engine
    event.listen(sync_engine, "before_cursor_execute", record)
    event.listen(sync_engine, "checkout", log_simple_queries)
    try:
        for filter, total in [
            (MOBILE, 5),  # a filter of session types: the kept counts on PostgreSQL
            (SessionFilter(ip_address="10.0.0.0/8"), 6),  # any other: counted row by row
            (SessionFilter(user_id="nobody"), 0),  # no row on the page, no match
        ]:
            request = PageRequest(filter, "user_name", 2)
            sent.clear()
            page = await list_sessions(request, ADMIN, store, CURSORS, clock)
            assert page.total == total and page.total_exact
            read = [s for s in sent if s.split()[0].upper() in ("SELECT", "WITH")]
            others = [s for s in sent if s not in read and s != "SELECT 1"]  # the pool's ping
            assert len(read) == 1, sent
            assert others == (["BEGIN"] if store.engine.dialect.name == "sqlite" else []), sent
            assert all("w_total" not in row for row in page.rows)
        first = await list_sessions(
            PageRequest(MOBILE, "user_name", 5), ADMIN, store, CURSORS, clock
        )
        assert ids(first.rows) == expected
    finally:
        event.remove(sync_engine, "before_cursor_execute", record)
        event.remove(sync_engine, "checkout", log_simple_queries)
        await store.engine.dispose()  # no connection logs on


async def test_a_page_statement_built_once_binds_each_requests_tenant_moment_and_position(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the first page's statement (page and count) is built once per shape of query and kept:
    # the tenant, the moment and the cursor's position are parameters, never what the first
    # request that built it had
    expected = await seed(store)
    ends_soon = session_row(session_id=handle("m-soon"), user_name="Aaron", session_type="mobile")
    ends_soon["expires_at"] = NOW + timedelta(minutes=5)
    await insert(store.engine, [ends_soon])
    counted = count_builds(store, monkeypatch)
    later = NOW + timedelta(minutes=10)  # past the one session's end

    def at(moment: datetime) -> Any:
        return lambda: moment

    request = PageRequest(MOBILE, "user_name", 2)
    first = await list_sessions(request, ADMIN, store, CURSORS, at(NOW))
    theirs = await list_sessions(request, OTHER_ADMIN, store, CURSORS, at(NOW))
    after = await list_sessions(request, ADMIN, store, CURSORS, at(later))
    assert counted() == 1  # built once, for the three
    assert (ids(first.rows), first.total) == ([handle("m-soon"), expected[0]], 6)
    assert (ids(theirs.rows), theirs.total) == ([THEIRS], 1)
    assert (ids(after.rows), after.total) == (expected[:2], 5)
    # later pages: one statement for every position, each page after its own cursor
    seen = ids(after.rows)
    cursor = after.next_cursor
    while cursor is not None:
        page = await list_sessions(
            PageRequest(MOBILE, "user_name", 2, cursor=cursor), ADMIN, store, CURSORS, at(later)
        )
        seen += ids(page.rows)
        cursor = page.next_cursor
    assert seen == expected


async def test_one_page_statement_serves_every_user_and_network_a_filter_names(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the statement is built per shape of filter, its values bound at execution: listing
    # each user, or each network, builds it once, and each list is that user's or network's
    rows = [
        session_row(user_id=f"u-{i % 3}", ip_address=f"10.{i % 3}.0.{i}", session_type="mobile")
        for i in range(9)
    ]
    await insert(store.engine, [*rows, session_row(tenant_id=OTHER_TENANT, user_id="u-0")])
    counted = count_builds(store, monkeypatch)
    built_pages = session_listing._page_of_shape.cache_info().misses
    for name, values in [
        ("user_id", [f"u-{i}" for i in range(3)]),
        ("ip_address", [f"10.{i}.0.0/16" for i in range(3)]),
    ]:
        for i, value in enumerate(values):
            given = SessionFilter.model_validate({name: value, "session_type": ["mobile"]})
            seen: list[str] = []
            request = PageRequest(given, "user_name", 2)
            while True:  # the first page, then pages after a cursor
                page = await list_sessions(request, ADMIN, store, CURSORS, clock)
                seen += ids(page.rows)
                if page.next_cursor is None:
                    break
                request = PageRequest(given, "user_name", 2, cursor=page.next_cursor)
            expected = [r["session_id"] for r in rows if rows.index(r) % 3 == i]
            assert sorted(seen) == sorted(expected) and page.total == 3, (name, value)
    # per filter: a first page and a page after a cursor, of one shape each
    assert counted() == 2
    assert session_listing._page_of_shape.cache_info().misses - built_pages <= 4


async def test_a_cursor_only_for_the_tenant_filter_and_sort_it_was_issued_for(
    store: Store,
) -> None:
    await seed(store)
    first = await list_sessions(PageRequest(MOBILE, "user_name", 2), ADMIN, store, CURSORS, clock)
    assert first.next_cursor is not None
    elsewhere = [
        (PageRequest(MOBILE, "user_name", 2, first.next_cursor), OTHER_ADMIN),
        (PageRequest(SessionFilter(), "user_name", 2, first.next_cursor), ADMIN),
        (PageRequest(MOBILE, "-user_name", 2, first.next_cursor), ADMIN),
        (PageRequest(MOBILE, "user_name", 2, first.next_cursor + "x"), ADMIN),
    ]
    for request, admin in elsewhere:
        with pytest.raises(InvalidParameter) as refused:
            await list_sessions(request, admin, store, CURSORS, clock)
        assert refused.value.field == "cursor" and refused.value.value == request.cursor
        assert "not a cursor this API issued" in refused.value.message


async def test_export_reads_every_match_in_order_batch_after_batch(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = await seed(store)
    monkeypatch.setattr(service, "EXPORT_BATCH", 2)
    rows = await export_sessions(ExportRequest(MOBILE, "user_name"), ADMIN, store, clock)
    assert ids([row async for row in rows]) == expected
    none = await export_sessions(
        ExportRequest(SessionFilter(user_name="nobody")), ADMIN, store, clock
    )
    assert [row async for row in none] == []


async def test_later_pages_and_the_export_run_their_statements_through_the_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Store.run is where a statement built once runs as the driver's SQL on PostgreSQL: a
    # page read past it is compiled by SQLAlchemy on every request
    expected = await seed(store)
    run, ran = store.run, []

    async def counted(conn: Any, statement: Any, values: Any) -> Any:
        ran.append(statement)
        return await run(conn, statement, values)

    monkeypatch.setattr(store, "run", counted)
    request = PageRequest(MOBILE, sort="user_name", limit=2)
    seen: list[str] = []
    while True:
        page = await list_sessions(request, ADMIN, store, CURSORS, clock)
        seen += ids(page.rows)
        if page.next_cursor is None:
            break
        request = PageRequest(MOBILE, sort="user_name", limit=2, cursor=page.next_cursor)
    monkeypatch.setattr(service, "EXPORT_BATCH", 2)
    rows = await export_sessions(ExportRequest(MOBILE, "user_name"), ADMIN, store, clock)
    assert seen == expected and ids([row async for row in rows]) == expected
    # 3 pages and 3 batches, each through the store, in 3 statements built once: the first
    # page with its count, the first batch, and every page or batch after a position
    assert len(ran) == 6 and len({id(statement) for statement in ran}) == 3


async def test_detail_in_any_state_with_history_and_only_in_the_tenant(
    store: Store,
) -> None:
    await seed(store)
    ended = NOW - timedelta(minutes=5)
    await insert(store.engine, [session_row(session_id=GONE, state="terminated", ended_at=ended)])
    async with store.engine.begin() as conn:
        await conn.execute(
            session_history.insert(),
            [
                {
                    "event_id": f"e{i}",
                    "tenant_id": TENANT,
                    "session_id": GONE,
                    "type": kind,
                    "occurred_at": at,
                    "detail": {},
                }
                for i, (kind, at) in enumerate(
                    [("session.terminated", ended), ("session.created", NOW - timedelta(hours=1))]
                )
            ],
        )
    active = await session_detail(ALICE, ADMIN, store, clock)
    assert active.active and active.fields["user_name"] == "alice" and active.history == []
    gone = await session_detail(GONE, ADMIN, store, clock)
    assert not gone.active and gone.fields["state"] == "terminated"
    assert [h.type for h in gone.history] == ["session.created", "session.terminated"]
    assert not (await session_detail(X1, ADMIN, store, clock)).active  # expired by now
    for session_id, admin in ((THEIRS, ADMIN), (ALICE, OTHER_ADMIN), (NOPE, ADMIN)):
        with pytest.raises(NotFound, match="no such session"):
            await session_detail(session_id, admin, store, clock)


async def test_a_tenants_searches_beyond_its_slots_wait_without_a_connection(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a search can read the tenant's every row for seconds: one tenant's admins sending many
    # must not take every connection of the pool the other tenants' requests share
    await seed(store)
    released = asyncio.Event()
    reading: list[str] = []
    first_page_and_total = session_search.first_page_and_total  # the one `service` imported

    async def held(
        store: Store, conn: Any, query: Any, tenant_id: str, *args: Any, **kw: Any
    ) -> Any:
        reading.append(tenant_id)
        await released.wait()
        return await first_page_and_total(store, conn, query, tenant_id, *args, **kw)

    monkeypatch.setattr(service, "first_page_and_total", held)
    slots = TenantSlots(per_tenant=2)
    search = PageRequest(SessionFilter(q="a"))
    ours = [
        asyncio.create_task(list_sessions(search, ADMIN, store, CURSORS, clock, slots))
        for _ in range(4)
    ]
    theirs = asyncio.create_task(list_sessions(search, OTHER_ADMIN, store, CURSORS, clock, slots))
    for _ in range(200):
        if len(reading) == 3:
            break
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.05)  # a third search of ours would have started by now

    assert sorted(reading) == sorted([TENANT, TENANT, OTHER_TENANT])
    assert slots.waiting(TENANT) == 4  # two reading, two waiting
    if store.engine.dialect.name == "postgresql":
        assert _checked_out(store) == 3  # the waiting two hold no connection
    released.set()
    pages = await asyncio.gather(*ours, theirs)

    assert len(reading) == 5
    assert [ids(p.rows) for p in pages[:4]] == [ids(pages[0].rows)] * 4
    assert pages[0].rows
    assert slots.waiting(TENANT) == 0 and slots.waiting(OTHER_TENANT) == 0


async def test_an_export_with_a_search_reads_each_batch_in_a_slot_of_its_tenant(
    store: Store,
) -> None:
    await seed(store)
    slots = TenantSlots(per_tenant=1)
    by_name = ExportRequest(SessionFilter(q="a", session_type=[SessionType.mobile]), "user_name")
    async with slots.hold(TENANT):  # a search of the tenant is being read
        export = asyncio.create_task(export_sessions(by_name, ADMIN, store, clock, slots))
        await asyncio.sleep(0.05)

        assert not export.done()  # its first batch waits for the slot
        assert slots.waiting(TENANT) == 2
        if store.engine.dialect.name == "postgresql":
            assert _checked_out(store) == 0  # and holds no connection meanwhile
        theirs = await export_sessions(by_name, OTHER_ADMIN, store, clock, slots)
        assert ids([row async for row in theirs]) == [THEIRS]  # another tenant's: at once

    rows = await export
    unlimited = await export_sessions(by_name, ADMIN, store, clock)
    expected = ids([row async for row in unlimited])
    assert expected and ids([row async for row in rows]) == expected
    assert slots.waiting(TENANT) == 0


@pytest.mark.parametrize("outdated", [True, False])
async def test_a_list_or_export_by_policy_outdated_waits_for_a_slot_of_its_tenant(
    store: Store, outdated: bool
) -> None:
    # `policy_outdated` compares every listed session of the tenant with its current settings
    # (no index holds it): either value reads the whole tenant, so it counts as a search (a
    # review, 2026-12-06: served with no slot and no budget, many at once filled the pool)
    await seed(store)
    slots = TenantSlots(per_tenant=1)
    by_policy = SessionFilter(policy_outdated=outdated)
    async with slots.hold(TENANT):
        listing = asyncio.create_task(
            list_sessions(PageRequest(by_policy), ADMIN, store, CURSORS, clock, slots)
        )
        export = asyncio.create_task(
            export_sessions(ExportRequest(by_policy), ADMIN, store, clock, slots)
        )
        await asyncio.sleep(0.05)
        assert not listing.done() and not export.done()
        assert slots.waiting(TENANT) == 3
    page, rows = await listing, await export
    unlimited = await list_sessions(PageRequest(by_policy), ADMIN, store, CURSORS, clock)
    assert ids(page.rows) == ids(unlimited.rows)
    every = await export_sessions(ExportRequest(by_policy), ADMIN, store, clock)
    assert ids([row async for row in rows]) == ids([row async for row in every])
    assert slots.waiting(TENANT) == 0


async def test_a_filtered_page_reads_the_table_for_its_own_rows_alone(store: Store) -> None:
    # the page's keys come from an index that holds what the filter compares (the address
    # index carries the session type and the expiry), and only the page's rows are read from
    # the table: not every entry the filter passed over
    rows = [
        session_row(
            ip_address=f"10.{0 if i % 10 == 0 else 1}.{i % 200}.{1 + i % 250}",
            session_type="mobile" if i % 3 == 0 else "browser",
            user_name=f"User {i:04d}",
        )
        for i in range(600)
    ]
    await insert(store.engine, rows)
    filter = SessionFilter.model_validate({"session_type": ["mobile"], "ip_address": "10.0.0.0/16"})
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    request = PageRequest(filter, "user_name", 5)
    page = await service.list_sessions(request, ADMIN, store, CURSORS, clock)
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    expected = sorted(
        (r for r in rows if r["session_type"] == "mobile" and r["ip_address"].startswith("10.0.")),
        key=lambda r: (r["user_name"], r["session_id"]),
    )
    assert ids(page.rows) == [r["session_id"] for r in expected[:5]]
    assert page.total == len(expected) == 20
    if store.engine.dialect.name != "postgresql":
        return
    ((sql, parameters),) = [(s, p) for s, p in sent if "ip_packed BETWEEN" in s]
    async with store.engine.connect() as conn, conn.begin():  # rolled back
        await conn.execute(text("ANALYZE sessions"))
        for setting in ("enable_seqscan", "enable_bitmapscan"):
            await conn.execute(text(f"SET LOCAL {setting} = off"))
        driver = (await conn.get_raw_connection()).driver_connection
        assert driver is not None
        found = await driver.fetch(f"EXPLAIN (ANALYZE, COSTS OFF) {sql}", *parameters)
        plan = "\n".join(r[0] for r in found)
    # the keys index-only from the address index; the table by its key, once per page row
    assert "Index Only Scan using ix_sessions_open_ip" in plan, plan
    assert re.search(r"Index Scan using sessions_pkey on sessions .*loops=6\)", plan), plan


def _checked_out(store: Store) -> int:
    """Connections in use: PostgresStore's pool is sized, so it counts them."""
    return cast(QueuePool, store.engine.pool).checkedout()
