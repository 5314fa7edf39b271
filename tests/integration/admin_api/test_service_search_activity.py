"""Three characters of a session id in a large tenant, read from its newest activity first
(`session_search._by_activity`; PostgreSQL's bounded path, revision 1101's keys index).

Such a piece is in thousands of a large tenant's ids. Read whole, the first page cost a heap
page per match; read a window of the tenant's newest (ten-minute) buckets of last activity at a
time, it costs one per match in the window. Whatever window answers, the page must be exactly
the first rows of the filter, the total exact or a lower bound it says it is, and no other
tenant's session may come in. On SQLite (one pass) the same searches must give the same pages.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from admin_api_support import NOW, OTHER_TENANT, TENANT, insert, session_row, unindexed_reference

from admin_api.adapters import session_search
from admin_api.domain.listing import ListQuery, Sort
from read_model.listing_indexes import ACTIVITY_BUCKET_SECONDS
from read_model.store import Store
from session_contracts.handles import session_handle
from session_contracts.models import SessionFilter

PIECE = "Qz7"
BUCKET = timedelta(seconds=ACTIVITY_BUCKET_SECONDS)


def _holding(n: int, tenant: str = TENANT) -> str:
    """An id of 43 characters holding `PIECE` (in either case) at a place that varies."""
    base = session_handle(tenant, f"piece-{n}")
    at = n % 30 + 5
    piece = PIECE if n % 2 else PIECE.swapcase()
    return base[:at] + piece + base[at + 3 :]


def _rows(rng: random.Random) -> list[dict[str, Any]]:
    """The tenant's sessions: ids holding the piece spread over 20 hours of last activity (so
    past the widest window, about ten hours), twice as many that do not, some on the very
    edges of a bucket, some mobile, some expired or ended; and another tenant's ids holding
    the piece, newer than all of them."""
    rows = []
    for n in range(160):
        holds = n % 3 == 0
        if n < 8:  # on a bucket's first instant, or just before it
            last = NOW - (n // 2) * BUCKET - (timedelta(microseconds=1) if n % 2 else timedelta())
        else:
            last = NOW - timedelta(seconds=rng.uniform(0, 20 * 3600))
        created = last - timedelta(hours=1)
        rows.append(
            session_row(
                session_id=_holding(n) if holds else session_handle(TENANT, f"other-{n}"),
                created_at=created,
                last_activity_at=last,
                expires_at=NOW + (timedelta(hours=-1) if n % 17 == 0 else timedelta(hours=8)),
                session_type="mobile" if n % 4 == 0 else "browser",
                state="terminated" if n % 19 == 0 else "open",
            )
        )
    for n in range(20):  # another tenant's, in the newest buckets
        rows.append(
            session_row(
                tenant_id=OTHER_TENANT,
                session_id=_holding(1000 + n, OTHER_TENANT),
                last_activity_at=NOW + timedelta(minutes=1),
                expires_at=NOW + timedelta(hours=8),
            )
        )
    return rows


@pytest.fixture
async def seeded(store: Store) -> Store:
    await insert(store.engine, _rows(random.Random(1101)))
    return store


def _windowed(monkeypatch: pytest.MonkeyPatch, store: Store, cap: int) -> list[Any]:
    """Make the piece expected in more ids than the cap (as three characters are in a tenant of
    millions), and record what each `_by_activity` answered."""
    monkeypatch.setattr(session_search, "handles_holding", lambda text, handles: 10.0**6)
    if store.search_walk is not None:  # PostgreSQL: the bounded path, a short window
        store.search_walk, store.search_cap = 4, cap
    return _recorded(monkeypatch)


def _recorded(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What each `_by_activity` answers from now on (the step still runs)."""
    answers: list[Any] = []
    step = session_search._by_activity

    async def recording(*args: Any, **kwargs: Any) -> Any:
        answer = await step(*args, **kwargs)
        answers.append(answer)
        return answer

    monkeypatch.setattr(session_search, "_by_activity", recording)
    return answers


async def _search(store: Store, query: ListQuery) -> session_search.SearchResult:
    async with store.engine.connect() as conn:
        return await session_search.first_page_and_total(store, conn, query, TENANT, NOW)


@pytest.mark.parametrize("sort", ["-last_activity_at", "last_activity_at"])
@pytest.mark.parametrize(("limit", "mobile"), [(3, False), (10, False), (40, False), (3, True)])
async def test_the_newest_buckets_give_exactly_the_first_page_of_the_filter(
    seeded: Store, monkeypatch: pytest.MonkeyPatch, sort: Sort, limit: int, mobile: bool
) -> None:
    store = seeded
    answers = _windowed(monkeypatch, store, cap=2)
    types = ["mobile"] if mobile else None
    for term in (PIECE, PIECE.lower(), PIECE.upper()):
        query = ListQuery(SessionFilter(q=term, session_type=types), sort, limit)
        expected = await unindexed_reference(store, query)
        assert len(expected) > limit  # the page is full, and there is more
        found = await _search(store, query)
        assert [str(r["session_id"]) for r in found.page.rows] == expected[:limit], term
        if found.exact:
            assert found.total == len(expected)
        else:
            assert limit < found.total <= len(expected)
    if store.search_walk is None:  # SQLite: one pass, no windows
        assert not answers
        return
    # PostgreSQL: answered from the windows when the widest holds the page (three rows: the
    # newest or oldest ten hours hold more); a page of forty is past it, and the other steps
    # answered instead, the same rows
    assert len(answers) == 3
    if limit == 3:
        assert all(page is not None for page, _ in answers)


async def test_a_page_in_the_newest_buckets_reads_only_their_matches(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the matches are spread over twenty hours: the first page of three is in the newest
    # buckets, and the total, the matches the window held, is short of all of them (a lower
    # bound, said to be one): the rest were never read
    store = seeded
    answers = _windowed(monkeypatch, store, cap=2)
    query = ListQuery(SessionFilter(q=PIECE), "-last_activity_at", 3)
    expected = await unindexed_reference(store, query)
    found = await _search(store, query)
    assert [str(r["session_id"]) for r in found.page.rows] == expected[:3]
    if store.search_walk is None:
        assert found.exact and found.total == len(expected)
        return
    assert answers and answers[0][0] is not None
    assert not found.exact and 3 < found.total < len(expected) // 2


async def test_another_tenants_newer_ids_holding_the_piece_never_come_in(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # globex's sessions holding the piece are newer than every one of acme's, in the same
    # buckets of time: acme's keys are hashed with acme, and its rows tested for it
    store = seeded
    _windowed(monkeypatch, store, cap=2)
    for sort in ("-last_activity_at", "last_activity_at"):
        query = ListQuery(SessionFilter(q=PIECE), sort, 40)
        found = await _search(store, query)
        listed = {str(r["session_id"]) for r in found.page.rows}
        assert listed and not listed & {_holding(1000 + n, OTHER_TENANT) for n in range(20)}
        assert [str(r["session_id"]) for r in found.page.rows] == (
            await unindexed_reference(store, query)
        )[:40]


async def test_matches_only_past_the_widest_window_are_found_by_the_other_steps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the tenant's newest session holds no piece; those that do are fifteen to twenty hours
    # older: no window holds the page, and the search goes on to its other steps
    rng = random.Random(7)
    rows = [session_row(session_id=session_handle(TENANT, "newest"), last_activity_at=NOW)]
    for n in range(12):
        last = NOW - timedelta(hours=rng.uniform(15, 20))
        rows.append(session_row(session_id=_holding(n), last_activity_at=last))
    for row in rows:
        row["expires_at"] = NOW + timedelta(hours=8)
    await insert(store.engine, rows)
    answers = _windowed(monkeypatch, store, cap=2)
    query = ListQuery(SessionFilter(q=PIECE), "-last_activity_at", 5)
    expected = await unindexed_reference(store, query)
    assert len(expected) == 12
    found = await _search(store, query)
    assert [str(r["session_id"]) for r in found.page.rows] == expected[:5]
    if store.search_walk is not None:
        assert answers and answers[0][0] is None  # no window held the page


async def test_a_window_holding_more_than_the_cap_is_left_to_the_other_steps(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the keys read no more matches than `keys_cap` at once: with it at the search's cap of
    # two, the newest bucket already holds more, and the walk finds the page instead
    store = seeded
    answers = _windowed(monkeypatch, store, cap=2)
    monkeypatch.setattr(session_search, "KEYS_READ", 0)  # keys_cap is the search's cap
    query = ListQuery(SessionFilter(q=PIECE), "-last_activity_at", 3)
    found = await _search(store, query)
    assert [str(r["session_id"]) for r in found.page.rows] == (
        await unindexed_reference(store, query)
    )[:3]
    if store.search_walk is not None:
        assert answers and answers[0][0] is None and answers[0][1] > 2


async def test_a_term_in_a_user_name_or_another_order_is_not_read_by_activity(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the windows answer the order of last activity only, and a term no user name holds (a
    # name's sessions are merged or walked)
    store = seeded
    answers = _windowed(monkeypatch, store, cap=2)
    for query in (
        ListQuery(SessionFilter(q=PIECE), "-created_at", 3),
        ListQuery(SessionFilter(q="ser"), "-last_activity_at", 3),  # "User 3"
    ):
        found = await _search(store, query)
        expected = await unindexed_reference(store, query)
        assert [str(r["session_id"]) for r in found.page.rows] == expected[:3]
    assert not answers


async def test_the_tenants_newest_and_oldest_buckets_are_probed_through_the_sort_index(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # two index-only probes of the last activity's B-tree, in the switches the step runs
    # them under: under a search step's (no index scans) the planner read the whole tenant
    # for them instead, 2.4 s at ten million sessions. The table scan is priced out here, as
    # the planner prices it at millions of rows
    store = seeded
    _windowed(monkeypatch, store, cap=2)
    plans: list[str] = []
    edges = session_search._edges_statement()
    run = store.run

    async def explaining(conn: Any, statement: Any, values: Any) -> Any:
        if statement is edges:
            await conn.exec_driver_sql("SET LOCAL enable_seqscan = off")
            compiled = statement.params(**values).compile(
                dialect=conn.dialect, compile_kwargs={"literal_binds": True}
            )
            explained = await conn.exec_driver_sql(f"EXPLAIN {compiled}")
            plans.append("\n".join(r[0] for r in explained))
        return await run(conn, statement, values)

    monkeypatch.setattr(store, "run", explaining)
    query = ListQuery(SessionFilter(q=PIECE), "-last_activity_at", 3)
    found = await _search(store, query)
    assert [str(r["session_id"]) for r in found.page.rows] == (
        await unindexed_reference(store, query)
    )[:3]
    if store.search_walk is None:
        assert not plans  # one pass: no edges
        return
    # (on a table this small the planner may take another B-tree than the last activity's:
    # what matters is that index scans are allowed, as bitmaps of the keys index are not what
    # the probes need)
    assert len(plans) == 1 and " Scan " in plans[0], plans
    assert "Seq Scan" not in plans[0] and "Bitmap" not in plans[0], plans[0]


async def test_a_session_active_at_an_infinite_time_is_listed_first_not_an_error(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a hostile far-future activity (`9999-12-31T23:59:59.999999Z`, stored as `infinity` on
    # PostgreSQL) is the tenant's newest: its bucket is after every finite one's, so no window
    # near it holds the page, and the other steps list it first
    store = seeded
    answers = _windowed(monkeypatch, store, cap=2)
    far = datetime.max.replace(tzinfo=UTC)
    row = session_row(session_id=_holding(5000))
    row.update(last_activity_at=far, expires_at=far)
    await insert(store.engine, [row])
    query = ListQuery(SessionFilter(q=PIECE), "-last_activity_at", 3)
    expected = await unindexed_reference(store, query)
    assert expected[0] == row["session_id"]
    found = await _search(store, query)
    assert [str(r["session_id"]) for r in found.page.rows] == expected[:3]
    if store.search_walk is not None:
        assert answers and answers[0][0] is None


@pytest.mark.parametrize("expected", [session_search.WINDOWED_IDS, session_search.WINDOWED_IDS + 1])
async def test_a_piece_expected_in_more_than_windowed_ids_is_read_from_the_newest_first(
    seeded: Store, monkeypatch: pytest.MonkeyPatch, expected: int
) -> None:
    # below the search's cap too: read whole, a piece in 1,250 ids (`5V0` in a tenant of four
    # million) cost a heap page each, 6-11 ms; past `WINDOWED_IDS` the windows answer first
    store = seeded
    monkeypatch.setattr(session_search, "handles_holding", lambda text, handles: float(expected))
    answers = _recorded(monkeypatch)
    query = ListQuery(SessionFilter(q=PIECE), "-last_activity_at", 3)
    found = await _search(store, query)
    assert [str(r["session_id"]) for r in found.page.rows] == (
        await unindexed_reference(store, query)
    )[:3]
    if store.search_walk is None:  # SQLite: one pass
        assert not answers
        return
    assert store.search_cap > session_search.WINDOWED_IDS + 1  # below the cap either way
    assert len(answers) == (1 if expected > session_search.WINDOWED_IDS else 0)
