"""The store interface's contract, run against both backends (`SqliteStore`, `PostgresStore`).

Every backend must answer each operation the same way: what the registry and the admin API
see never depends on where the read model lives. (Replacing a database by a rebuilt one is
exercised by the registry's rebuild tests.)
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import and_, func, insert, select, text
from sqlalchemy.ext.asyncio import AsyncConnection

from migrated import MigratedCopies
from read_model import listing_indexes
from read_model import store as store_module
from read_model.database import open_store
from read_model.postgres import PostgresStore
from read_model.session_query import (
    active_clause,
    conditions_clause,
    filter_clause,
    filter_parameters,
)
from read_model.sqlite import SqliteStore
from read_model.store import SESSION_COLUMNS, SessionRow, Store
from read_model.tables import consumer_positions, outbox, revocations, session_history, sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SessionFilter, SessionType

NOW = datetime(2030, 1, 1, tzinfo=UTC)
FAR = datetime.max.replace(tzinfo=UTC)  # a legal contract time: PostgreSQL stores +infinity
FAR_BACK = timedelta(days=1)


@pytest.fixture
async def store(db_url: str, migrated: MigratedCopies) -> AsyncIterator[Store]:
    await migrated.migrate(db_url)
    store = open_store(db_url)
    yield store
    await store.dispose()


def row(session_id: str, tenant: str = "t", **values: Any) -> SessionRow:
    """A sessions row: an active browser session unless `values` say otherwise."""
    fields: dict[str, Any] = dict.fromkeys(SESSION_COLUMNS)
    fields.update(
        tenant_id=tenant,
        session_id=session_id,
        user_id="u",
        user_name=f"user {session_id}",
        session_type="browser",
        ip_address="10.0.0.1",
        ip_packed=bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1]),
        max_session_seconds=3600,
        idle_timeout_seconds=600,
        created_at=NOW - timedelta(minutes=5),
        last_activity_at=NOW - timedelta(minutes=1),
        expires_at=NOW + timedelta(minutes=9),
        state="open",
    )
    fields.update(values)
    return tuple(fields[name] for name in SESSION_COLUMNS)


async def test_the_url_chooses_the_store(store: Store, db_url: str, tmp_path: Path) -> None:
    expected = SqliteStore if db_url.startswith("sqlite") else PostgresStore
    assert type(store) is expected
    with pytest.raises(ValueError, match="no read model store"):
        open_store("mysql+aiomysql://user@localhost/sessions")
    missing = open_store(f"sqlite+aiosqlite:///{tmp_path / 'not' / 'there.db'}")
    assert not await missing.exists()  # asking does not create it (nor its folder)
    assert not (tmp_path / "not").exists()
    await missing.dispose()
    assert await store.exists()


async def test_sessions_are_upserted_and_loaded_in_key_order(store: Store) -> None:
    first = [row("b"), row("a", user_name=None, ip_packed=None), row("c", tenant="u")]
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, first)
    changed = row("b", state="terminated", ended_at=NOW, end_reason="admin", expires_at=FAR)
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [changed])
        keys = {("t", "a"), ("t", "b"), ("u", "c"), ("t", "missing")}
        locked = await store.load_sessions(uow.conn, keys, lock=True)
    async with store.engine.connect() as conn:
        loaded = await store.load_sessions(conn, keys)
        everything = await store.select_sessions(
            conn, select(sessions).order_by(sessions.c.tenant_id, sessions.c.session_id)
        )
    assert loaded == locked == everything == [first[1], changed, first[2]]
    assert loaded[1][SESSION_COLUMNS.index("expires_at")] == FAR  # aware UTC, also at the edge
    assert loaded[0][SESSION_COLUMNS.index("created_at")].utcoffset() == timedelta(0)
    async with store.engine.connect() as conn:
        assert await store.load_sessions(conn, []) == []


async def test_history_keeps_the_first_row_of_an_event_id(store: Store) -> None:
    entry = ("e1", "t", "s", "session.created", NOW, {"user_id": "u"})
    again = ("e1", "t", "s", "session.created", NOW, {"user_id": "someone else"})
    async with UnitOfWork(store) as uow:
        await store.save_history(uow.conn, [entry])
        await store.save_history(uow.conn, [again, ("e2", "t", "s", "session.expired", NOW, {})])
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(session_history).order_by("event_id"))).all()
    assert [(r.event_id, r.detail) for r in rows] == [("e1", {"user_id": "u"}), ("e2", {})]


async def test_outbox_ids_follow_the_given_order(store: Store) -> None:
    records = [
        ("topic", f"k{i}".encode(), None if i == 3 else f"v{i}".encode(), b"h" if i == 1 else None)
        for i in range(5)
    ]
    async with UnitOfWork(store) as uow:
        await store.add_to_outbox(uow.conn, records[:2])
        await store.add_to_outbox(uow.conn, records[2:])
        await store.add_to_outbox(uow.conn, [])
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(outbox).order_by(outbox.c.id))).all()
    assert [
        (r.topic, bytes(r.key), r.value and bytes(r.value), r.headers and bytes(r.headers))
        for r in rows
    ] == records


async def test_revocations_are_replaced_by_key(store: Store) -> None:
    """A row keeps the later of the `valid_until`s, and the other fields of the record lasting
    longer (the revocation guard writes the record again from the row alone): the new one's
    on a tie or a longer one, the stored one's against a shorter one, any over a row keeping
    none (written by the release before revision 1301)."""
    earlier = NOW - FAR_BACK
    async with UnitOfWork(store) as uow:
        await store.save_revocations(
            uow.conn,
            [("t", "a", NOW, "browser", NOW, "logout"), ("t", "b", NOW, "mobile", NOW, "admin")],
        )
        await uow.conn.execute(
            insert(revocations).values(tenant_id="t", session_id="c", valid_until=NOW)
        )
        await store.save_revocations(uow.conn, [("t", "a", FAR, "browser", FAR, "admin")])
        await store.save_revocations(uow.conn, [("t", "b", earlier, "mobile", FAR, "security")])
        await store.save_revocations(uow.conn, [("t", "c", earlier, "browser", NOW, "logout")])
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(revocations).order_by("session_id"))).all()
    kept = [(r.session_id, r.valid_until, r.session_type, r.revoked_at, r.reason) for r in rows]
    assert [
        (n, u.replace(tzinfo=UTC), t, at.replace(tzinfo=UTC), why) for n, u, t, at, why in kept
    ] == [
        ("a", FAR, "browser", FAR, "admin"),
        ("b", NOW, "mobile", NOW, "admin"),
        ("c", NOW, "browser", NOW, "logout"),
    ]


async def test_insert_takes_on_conflict_clauses(store: Store) -> None:
    values = {"consumer": "c", "topic": "t", "partition": 0}
    async with UnitOfWork(store) as uow:
        for offset in (5, 7):
            statement = store.insert(consumer_positions).values(**values, next_offset=offset)
            await uow.conn.execute(
                statement.on_conflict_do_update(
                    index_elements=list(consumer_positions.primary_key.columns),
                    set_={"next_offset": statement.excluded.next_offset},
                )
            )
        ignored = store.insert(consumer_positions).values(**values, next_offset=1)
        await uow.conn.execute(ignored.on_conflict_do_nothing())
    async with store.engine.connect() as conn:
        kept = (await conn.execute(select(consumer_positions.c.next_offset))).scalars().all()
    assert kept == [7]


async def test_rows_read_for_update_wait_for_their_unit_of_work(store: Store) -> None:
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("a")])
    query = select(sessions).where(sessions.c.session_id == "a")
    order: list[str] = []

    async def second() -> None:
        async with UnitOfWork(store) as uow:
            [seen] = await store.select_sessions(uow.conn, query, lock=True)
            order.append(f"second read {seen[SESSION_COLUMNS.index('user_name')]}")

    async with UnitOfWork(store) as uow:
        await store.select_sessions(uow.conn, query, lock=True)
        waiting = asyncio.create_task(second())
        await asyncio.sleep(0.3)
        order.append("first writes")
        await store.save_sessions(uow.conn, [row("a", user_name="changed")])
    await asyncio.wait_for(waiting, 30)
    assert order == ["first writes", "second read changed"]


async def test_a_named_lock_makes_writers_take_turns_past_the_statement_timeout(
    store: Store,
) -> None:
    """Whether or not a row exists to lock (a tenant's settings never changed), and however
    long the holder takes: the admin API's connections stop a statement at 15 s, which cut a
    wait behind a settings change awaiting Kafka's answer (up to 20 s) into a 503 about a
    search (`time_limit`)."""
    order: list[str] = []

    async def second() -> None:
        async with UnitOfWork(store) as uow:
            if isinstance(store, PostgresStore):
                await uow.conn.execute(text("SET LOCAL statement_timeout = '500ms'"))
            await store.lock_named(uow.conn, "settings/acme")
            order.append("second")
            if isinstance(store, PostgresStore):
                timeout = await uow.conn.execute(
                    text("SELECT current_setting('statement_timeout')")
                )
                order.append(f"then {timeout.scalar()}")

    async with UnitOfWork(store) as uow:
        await store.lock_named(uow.conn, "settings/acme")
        waiting = asyncio.create_task(second())
        await asyncio.sleep(1.0)  # twice the waiter's statement timeout
        order.append("first")
    await asyncio.wait_for(waiting, 30)
    after = ["then 500ms"] if isinstance(store, PostgresStore) else []
    assert order == ["first", "second", *after]


async def test_skip_locked_leaves_out_what_another_writer_holds(store: Store) -> None:
    if isinstance(store, SqliteStore):
        pytest.skip("SQLite has one writer at a time: there is never a row to skip")
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("a"), row("b")])
    everything = select(sessions).order_by(sessions.c.session_id)
    async with UnitOfWork(store) as holder:
        held = everything.where(sessions.c.session_id == "a")
        await store.select_sessions(holder.conn, held, lock=True)
        async with UnitOfWork(store) as other:
            rows = await store.select_sessions(other.conn, everything, lock=True, skip_locked=True)
    assert [r[1] for r in rows] == ["b"]


async def test_counts_are_the_active_listed_sessions_of_a_filter(store: Store) -> None:
    rows = [
        row("active-1"),
        row("active-2", session_type="mobile"),
        row("unswept", expires_at=NOW - timedelta(seconds=1)),
        row("at-now", session_type="mobile", expires_at=NOW),
        row("ended", state="terminated", ended_at=NOW),
        row("not-created", created_at=None, user_id=None),
        row("desktop", session_type="desktop_app"),
        row("other-tenant", tenant="u"),
        row("outdated", max_session_seconds=7200),
    ]
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, rows)
    filters = [
        SessionFilter(),
        SessionFilter(session_type=[SessionType.browser]),
        SessionFilter(session_type=[SessionType.mobile, SessionType.browser]),
        SessionFilter(q="active"),
        SessionFilter(policy_outdated=True),
    ]
    async with store.engine.connect() as conn:
        for given in filters:
            query = select(func.count()).select_from(sessions)
            expected = (await conn.execute(query.where(filter_clause(given, "t", NOW)))).scalar()
            assert await store.count_active(conn, given, "t", NOW) == expected, given
        assert await store.count_active(conn, SessionFilter(), "t", NOW) == 3
        assert await store.count_active(conn, SessionFilter(), "nobody", NOW) == 0


async def test_a_tenants_size_is_counted_then_kept_for_a_few_seconds(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # only a search's choice of path reads it: kept, it spares a statement per search, and it
    # is never another tenant's
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("a1"), row("a2"), row("b1", tenant="b")])
    clock = [1000.0]
    monkeypatch.setattr(time, "monotonic", lambda: clock[0])  # the module `store` uses
    counted: list[str] = []
    count = store.count_active

    async def counting(conn: AsyncConnection, filter: SessionFilter, tenant: str, now: Any) -> int:
        counted.append(tenant)
        return await count(conn, filter, tenant, now)

    monkeypatch.setattr(store, "count_active", counting)
    async with store.engine.connect() as conn:
        assert await store.tenant_size(conn, "t", NOW) == 2
        assert await store.tenant_size(conn, "b", NOW) == 1
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("a3")])
    async with store.engine.connect() as conn:
        clock[0] += store_module.TENANT_SIZE_SECONDS - 1
        assert await store.tenant_size(conn, "t", NOW) == 2  # kept
        assert await store.tenant_size(conn, "nobody", NOW) == 0
        clock[0] += 1
        assert await store.tenant_size(conn, "t", NOW) == 3  # counted again
    assert counted == ["t", "b", "nobody", "t"]
    # of some types: counted and kept apart from the tenant's whole size
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("m1", session_type="mobile")])
    mobile, browser = (SessionType.mobile,), (SessionType.browser,)
    async with store.engine.connect() as conn:
        assert await store.tenant_size(conn, "t", NOW, mobile) == 1
        assert await store.tenant_size(conn, "t", NOW, browser) == 3
        assert await store.tenant_size(conn, "t", NOW) == 3  # kept, without the mobile one
        assert await store.tenant_size(conn, "b", NOW, mobile) == 0
    assert counted[4:] == ["t", "t", "b"]


async def test_a_search_reads_in_a_transaction_of_its_own(store: Store) -> None:
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("a"), row("b")])
    async with store.engine.connect() as conn:
        async with store.search(conn, capped=False):
            assert conn.in_transaction()
            found = await conn.execute(select(func.count()).select_from(sessions))
            assert found.scalar() == 2
        assert not conn.in_transaction()


async def test_two_reads_together_see_one_snapshot_whatever_commits_between(
    store: Store,
) -> None:
    """A page and its total come from `read_together`: a session the registry commits while
    they run is in neither or in both, never counted but not listed."""
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, [row("a"), row("b")])
    committed = asyncio.Event()

    async def count(conn: AsyncConnection) -> int:
        found = await conn.execute(select(func.count()).select_from(sessions))
        return int(found.scalar_one())

    async def first(conn: AsyncConnection) -> tuple[int, int]:
        before = await count(conn)
        async with UnitOfWork(store) as uow:  # the registry, committing meanwhile
            await store.save_sessions(uow.conn, [row("c")])
        committed.set()
        return before, await count(conn)

    async def second(conn: AsyncConnection) -> int:
        await committed.wait()  # (a store may run the two side by side)
        return await count(conn)

    (before, after), beside = await store.read_together(first, second)
    assert (before, after, beside) == (2, 2, 2)
    async with store.engine.connect() as conn:
        assert await count(conn) == 3


async def _indexes(store: Store) -> dict[str, str]:
    """Each index of `sessions` by name, with its definition as the database reports it."""
    query = (
        "SELECT indexname, indexdef FROM pg_indexes WHERE tablename = 'sessions'"
        if isinstance(store, PostgresStore)
        else "SELECT name, coalesce(sql, '') FROM sqlite_master "
        "WHERE type = 'index' AND tbl_name = 'sessions'"
    )
    async with store.engine.connect() as conn:
        # `exec_driver_sql` returns `CursorResult[Any]`: to mypy, rows of a single column
        rows: Iterable[Sequence[str]] = await conn.exec_driver_sql(query)
        return {name: definition for name, definition in rows}


async def test_a_bulk_load_ends_with_exactly_the_migrated_indexes(store: Store) -> None:
    migrated = await _indexes(store)
    async with store.bulk_load():
        during = await _indexes(store)
        async with UnitOfWork(store) as uow:
            await store.save_sessions(uow.conn, [row("a"), row("b"), row("c", tenant="u")])
    assert await _indexes(store) == migrated
    if isinstance(store, PostgresStore):
        # the listing indexes were off during the load, and no other index was
        assert set(migrated) - set(during) == set(listing_indexes.NAMES)
        assert set(during) < set(migrated)
    else:
        assert during == migrated
    async with store.engine.connect() as conn:
        assert await store.count_active(conn, SessionFilter(), "t", NOW) == 2
    # PostgreSQL: through the rebuilt trigram index
    async with store.engine.connect() as conn, store.search(conn, capped=False):
        found = await conn.execute(
            select(sessions.c.session_id).where(filter_clause(SessionFilter(q="user b"), "t", NOW))
        )
        assert [r[0] for r in found] == ["b"]


async def test_a_failed_bulk_load_still_ends_with_the_migrated_indexes(store: Store) -> None:
    migrated = await _indexes(store)
    with pytest.raises(RuntimeError, match="replay failed"):
        async with store.bulk_load():
            raise RuntimeError("replay failed")
    assert await _indexes(store) == migrated


SHAPE_PAIRS = [
    # two filters of one shape each that pick different sessions: a statement built for the
    # first and run with the second's values must pick the second's
    ({"q": "ada"}, {"q": "bob"}),  # three characters: the session id keys too
    ({"q": "Ad"}, {"q": "Bo"}),  # shorter: the session id tested row by row
    ({"q": "xyz7"}, {"q": "QRS4"}),  # in the session id only
    ({"user_name": "lovelace"}, {"user_name": "builder"}),
    ({"session_id": "xyz789"}, {"session_id": "qrs456"}),
    ({"session_id": "Xy"}, {"session_id": "Qr"}),
    ({"device": "firefox"}, {"device": "safari"}),
    ({"ip_address": "10.0.0.0/8"}, {"ip_address": "192.168.0.0/16"}),
    ({"user_id": "u-ada"}, {"user_id": "u-bob"}),
    ({"created_from": NOW - timedelta(minutes=10)}, {"created_from": NOW - timedelta(hours=1)}),
    ({"created_to": NOW - timedelta(minutes=10)}, {"created_to": NOW}),
    ({"last_activity_from": NOW - timedelta(minutes=5)}, {"last_activity_from": NOW - FAR_BACK}),
    ({"last_activity_to": NOW - timedelta(minutes=5)}, {"last_activity_to": NOW}),
    ({"expires_from": NOW + timedelta(minutes=20)}, {"expires_from": NOW}),
    ({"expires_to": NOW + timedelta(minutes=20)}, {"expires_to": NOW + timedelta(hours=1)}),
    (
        {"session_type": ["mobile"], "user_id": "u-bob", "device": "safari", "q": "bui"},
        {"session_type": ["mobile"], "user_id": "u-ann", "device": "chrome", "q": "ann"},
    ),
    (
        {"ip_address": "10.0.0.0/8", "policy_outdated": True, "expires_to": NOW + FAR_BACK},
        {"ip_address": "10.0.0.0/24", "policy_outdated": True, "expires_to": NOW},
    ),
]


async def test_a_filters_shape_bound_with_a_filters_values_picks_what_its_values_pick(
    store: Store,
) -> None:
    # the list builds a statement once per shape of filter and binds the values of each
    # request's (`filter_parameters`): the clause of the shape, bound with a filter's values,
    # picks what the clause with those values picks, as a walk tests it too; on PostgreSQL
    # the second filter of each pair runs the statement compiled to the driver's SQL
    sessions_ = [
        row("sid-Xyz789abc", user_name="Ada Lovelace", user_id="u-ada", device="Firefox"),
        row(
            "sid-Qrs456def",
            user_name="Bob Builder",
            user_id="u-bob",
            device="Safari on iOS",
            session_type="mobile",
            ip_address="192.168.1.7",
            ip_packed=bytes(10) + b"\xff\xff" + bytes([192, 168, 1, 7]),
            created_at=NOW - timedelta(minutes=50),
            last_activity_at=NOW - timedelta(minutes=20),
            expires_at=NOW + timedelta(minutes=30),
        ),
        row(
            "sid-Ann000ghi",
            user_name="Ann Chrome",
            user_id="u-ann",
            device="Chrome",
            session_type="mobile",
            ip_address="10.0.0.9",
            ip_packed=bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 9]),
        ),
        row("sid-Zed111jkl", tenant="u", user_name="Ada Bob", user_id="u-ada"),
    ]
    async with UnitOfWork(store) as uow:
        await store.save_sessions(uow.conn, sessions_)
    built: dict[Any, Any] = {}
    async with store.engine.connect() as conn:

        async def picked(clause: Any, values: dict[str, Any] | None = None) -> set[str]:
            query = select(sessions.c.session_id).where(clause)
            if values is None:
                return {str(i) for i in (await conn.execute(query)).scalars()}
            key = (str(clause), tuple(values))
            statement = built.setdefault(key, query)  # one statement per shape, run again
            return {str(i) for i in (await store.run(conn, statement, values)).scalars()}

        for first, second in SHAPE_PAIRS:
            filters = [SessionFilter.model_validate(f) for f in (first, second)]
            shapes = [filter_parameters(f)[0] for f in filters]
            assert shapes[0] == shapes[1], (first, second)
            picks = []
            for given in filters:
                shape, values = filter_parameters(given)
                expected = await picked(filter_clause(given, "t", NOW))
                assert await picked(filter_clause(shape, "t", NOW), values) == expected, given
                walked = and_(active_clause("t", NOW), conditions_clause(shape, walked=True))
                assert await picked(walked, values) == expected, given
                picks.append(expected)
            assert picks[0] != picks[1] and picks[0] | picks[1], (first, second, picks)
