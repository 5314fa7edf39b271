"""A search's first page and total, by every path the store may take (one pass; the directory
of user names; the bounded walk, the trigram step, the walk on), against the unindexed filter:
the same sessions in the same order, and a total that is exact or, when it says it is not, a
true lower bound. Short fragments (one to three characters), mixed case and non-ASCII names;
both backends.

The bounded path's limits are made tiny here (a walk of a few rows, a cap of a few matches),
so that a few hundred rows take every branch that millions take in production.
"""

from __future__ import annotations

import random
import re
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from admin_api_support import NOW, OTHER_TENANT, TENANT, insert, session_row, unindexed_reference
from sqlalchemy import (
    ARRAY,
    ColumnClause,
    String,
    event,
    func,
    literal,
    literal_column,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from admin_api.adapters import session_search
from admin_api.auth import EDIT_USER_SESSIONS, Admin
from admin_api.domain.cursors import CursorCodec
from admin_api.domain.listing import ListQuery, Sort
from admin_api.service_layer.sessions import PageRequest, list_sessions
from read_model.active import active_condition, listed_condition
from read_model.listing_indexes import KEYS_INDEX_NAME
from read_model.postgres import DriverSQL
from read_model.session_query import (
    HANDLE_CHARACTERS,
    binary_text,
    by_session_id,
    like_pattern,
    may_be_in_handle,
)
from read_model.store import Store
from read_model.tables import sessions
from session_contracts.handles import session_handle
from session_contracts.models import SessionFilter

ADMIN = Admin("admin-1", TENANT, frozenset({EDIT_USER_SESSIONS}))
CURSORS = CursorCodec(b"k" * 32)
NAMES = [
    "Jürgen Müller", "JÜRGEN MÜLLER", "Zoë Brown", "Ærø Ås", "Björn Borg", "Émile Zola",
    "ada lovelace", "Ada Lovelace", "Grace Hopper", "li", "Ωmega Σigma", "O'Brien-Smith",
    "Smith", "smith", "SMITH", "100% pure_", "Χρήστος",
]  # fmt: skip
FRAGMENTS = [
    "a", "A", "ü", "Ü", "ø", "Ø", "ë", "Ω", "ω", "x", "%", "_", "'", "-", "9",
    "sm", "SM", "Sm", "ll", "LL", "ös", "Ø ", "ma", "re",
    "smi", "SMI", "müL", "ÜLL", "ada", "Ada", "ωme", "rg ", "0% ", "zzz", "obi", "bro",
    "smith", "lovelace", "browser", "mobile",
    "\u212a", "\u017f", "\u212a-",  # the Kelvin sign lowers onto k; the long s uppers onto S
]  # fmt: skip
SORTS: list[Sort] = ["-last_activity_at", "user_name", "-session_id", "ip_address"]


def _rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        tenant = rng.choice([TENANT] * 5 + [OTHER_TENANT])
        rows.append(
            session_row(
                tenant_id=tenant,
                session_id=session_handle(tenant, f"c-{i}"),
                user_name=rng.choice(NAMES),
                session_type=rng.choice(["browser"] * 4 + ["mobile"] * 2 + ["api_client"]),
                last_activity_at=NOW - timedelta(minutes=rng.randint(0, 40)),
                expires_at=NOW + timedelta(minutes=rng.randint(-60, 600)),
                state=rng.choice(["open"] * 8 + ["terminated"]),
            )
        )
    return rows


async def _ids(store: Store) -> list[str]:
    """The tenant's listed active session ids, by the unindexed filter."""
    return await unindexed_reference(store, ListQuery(SessionFilter(), "session_id"))


@contextmanager
def bounded(store: Store, walk: int | None, cap: int) -> Iterator[None]:
    saved = store.search_walk, store.search_cap
    store.search_walk, store.search_cap = walk, cap
    try:
        yield
    finally:
        store.search_walk, store.search_cap = saved


@pytest.fixture
async def seeded(store: Store) -> Store:
    await insert(store.engine, _rows(random.Random(18), 240))
    return store


@dataclass(frozen=True)
class Call:
    """One call of a step of `session_search`, as `_recorded` saw it."""

    args: tuple[Any, ...]
    kwargs: dict[str, Any]
    result: Any


def _recorded(monkeypatch: pytest.MonkeyPatch, name: str) -> list[Call]:
    """Every call of `session_search`'s coroutine `name` from now on (the step still runs)."""
    calls: list[Call] = []
    step = getattr(session_search, name)

    async def recording(*args: Any, **kwargs: Any) -> Any:
        result = await step(*args, **kwargs)
        calls.append(Call(args, kwargs, result))
        return result

    monkeypatch.setattr(session_search, name, recording)
    return calls


@pytest.mark.parametrize(("walk", "cap"), [(None, 5000), (4, 6), (30, 3), (2000, 5000)])
async def test_every_path_gives_the_first_page_of_the_unindexed_filter(
    seeded: Store, walk: int | None, cap: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = seeded
    lower_bounds = 0
    trigram_steps, walks = _recorded(monkeypatch, "_trigram"), _recorded(monkeypatch, "_walk")
    lookups, merges = _recorded(monkeypatch, "_by_directory"), _recorded(monkeypatch, "_merged")
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    rng = random.Random(walk)
    with bounded(store, walk, cap):
        for fragment in FRAGMENTS:
            for field in ("q", "user_name"):
                filter = SessionFilter.model_validate({field: fragment})
                sort = rng.choice(SORTS)
                limit = rng.choice([1, 3, 10])
                query = ListQuery(filter, sort, limit)
                expected = await unindexed_reference(store, query)
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
                case = f"{field}={fragment!r} sort={sort} limit={limit}"
                got = [str(r["session_id"]) for r in found.page.rows]
                assert got == expected[:limit], case
                assert (found.page.after is not None) == (len(expected) > limit), case
                if found.exact:
                    assert found.total == len(expected), case
                else:
                    lower_bounds += 1
                    assert limit < found.total <= len(expected), case
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    # no round trip for a statement that can match nothing (the session id arm of a term no
    # handle can hold)
    assert sent and not [s for s in sent if re.search(r"WHERE false", s)]
    # PostgreSQL's bounded path answers rare terms from the directory of user names, and
    # merges the names' first sessions when they are more than its cap (tiny here)
    named = sum(c.result[0] is not None for c in lookups)
    assert named > 0 if store.user_name_directory and walk else named == 0
    # and merges the first sessions of names in an order kept per name
    merged = sum(c.result is not None for c in merges)
    assert merged > 0 if store.user_name_directory and walk else merged == 0
    taken = {
        "trigram answered": sum(c.result[0] is not None for c in trigram_steps),
        "lower bounds": lower_bounds,
        # a walk on (its seventh argument, the window walked) from a window holding matches
        "resumed with matches": sum(
            len(c.args) > 6 and c.args[6] is not None and bool(c.args[6].rows) for c in walks
        ),
    }
    if walk is None:  # one pass: always exact
        assert taken == {"trigram answered": 0, "lower bounds": 0, "resumed with matches": 0}
    elif walk <= 30:  # tiny limits: the bounded path took each of its steps, and walked on
        # from a window whose matches it kept
        assert all(taken.values()), taken


async def test_a_piece_expected_in_more_ids_than_the_cap_skips_the_capped_read(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # at millions of sessions three characters are in thousands of ids, past the cap: the
    # directory then looks up the names only, and the walk finds the page, the same rows
    store = seeded
    expected_per_term: list[float] = []

    def many(text: str, handles: int) -> float:
        expected_per_term.append(handles)
        return 10.0**9

    async def refused(*args: Any) -> Any:
        raise AssertionError("read the matches of a term expected past the cap")

    def not_built(*args: Any) -> Any:
        raise AssertionError("read the matches of a term expected past the cap")

    monkeypatch.setattr(session_search, "handles_holding", many)
    if store.user_name_directory:  # the directory path, where the choice is made
        monkeypatch.setattr(session_search, "_named_statement", not_built)
        monkeypatch.setattr(session_search, "_trigram", refused)
    pieces = [
        t
        for t in FRAGMENTS
        if len(t) == 3
        and may_be_in_handle(t)
        and session_search._directory_searchable(SessionFilter(q=t))
    ]
    assert pieces
    with bounded(store, 4, 3):
        for term in pieces:
            for sort in SORTS:
                query = ListQuery(SessionFilter(q=term), sort, 3)
                expected = await unindexed_reference(store, query)
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
                got = [str(r["session_id"]) for r in found.page.rows]
                assert got == expected[:3], (term, sort)
                assert found.total == len(expected) if found.exact else found.total > 3
    # asked with the tenant's count of active sessions, on the bounded path only
    if store.user_name_directory:
        assert expected_per_term and set(expected_per_term) == {
            len(await unindexed_reference(store, ListQuery(SessionFilter(), "session_id", 1)))
        }
    else:
        assert not expected_per_term


async def test_a_piece_past_the_search_cap_within_the_keys_cap_is_read_whole_not_walked(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # three characters expected in more ids than the search's cap, but few enough for a large
    # tenant that reading them through the session id keys (a heap page each) costs less
    # than the walk (`keys_cap`): the directory reads them whole, sorts them, and the total
    # is exact
    store = seeded
    if not store.user_name_directory:
        return  # one pass: every match is read anyway (tested above)

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"walked: {args[2].filter}")

    monkeypatch.setattr(session_search, "_walk", refused)
    monkeypatch.setattr(session_search, "handles_holding", lambda text, handles: 10.0)
    ids = await _ids(store)
    tenant = len(ids)
    assert session_search.keys_cap(3, tenant) > 10  # the expected ids: read, not walked
    answered = 0
    with bounded(store, 4, 3):
        for term in ("smi", "SMI", "bro", "ada", ids_piece := ids[0][4:7]):
            for sort in SORTS:
                query = ListQuery(SessionFilter(q=term), sort, 3)
                expected = await unindexed_reference(store, query)
                if len(expected) > session_search.keys_cap(3, tenant):
                    continue
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
                assert [str(r["session_id"]) for r in found.page.rows] == expected[:3], term
                assert found.exact and found.total == len(expected), (term, sort)
                answered += len(expected) > 3  # past the search's cap of 3
    assert answered and ids_piece


async def test_a_split_term_is_looked_up_in_the_session_id_index_never_walked(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # pg_trgm reads `Z-R` as "a word ending in z" and "a word starting with r", trigrams in
    # most session ids: looked up in an index of the ids as they are, it read nearly every
    # posting entry (4 s at ten million); walked, a rare one read the tenant's whole sort
    # order (seconds at four million). The session id index holds the ids with `-` and `_`
    # written as letters: the directory and that index answer such a term, without a walk
    # and without the sessions' user name trigram index (where the split stays), and find
    # exactly what the filter matches
    store = seeded

    async def refused(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError(f"walked or looked up by user name: {args[2].filter}")

    monkeypatch.setattr(session_search, "_trigram", refused)
    if store.user_name_directory:  # PostgreSQL's bounded path
        monkeypatch.setattr(session_search, "_walk", refused)
    # a piece of a session id: one character, `-` or `_`, one character
    pieces = [
        i[at - 1 : at + 2]
        for i in await _ids(store)
        for at in range(1, len(i) - 1)
        if i[at] in "-_" and i[at - 1].isalnum() and i[at + 1].isalnum()
    ]
    split = [pieces[0], pieces[1].swapcase(), "Z-R", "0_g", "Q-_-q", "a\\_-"]
    assert not any(session_search.trigram_selective(t) for t in split)
    with bounded(store, 4, 3):
        for term in split:
            query = ListQuery(SessionFilter(q=term), "-last_activity_at", 3)
            expected = await unindexed_reference(store, query)
            async with store.engine.connect() as conn:
                found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
            assert [str(r["session_id"]) for r in found.page.rows] == expected[:3], term
            assert found.exact and found.total == len(expected), term
            assert expected or term not in pieces, term  # a piece of an id finds it


async def test_the_letters_standing_for_separators_match_no_separator(seeded: Store) -> None:
    # the session id index holds `-` and `_` as ж and ш: a term holding those letters (or
    # their capitals, which ILIKE lowers onto them) must not find the ids holding `-` or `_`
    store = seeded
    pieces = [
        i[at - 1 : at + 2]
        for i in await _ids(store)
        for at in range(1, len(i) - 1)
        if i[at] in "-_" and i[at - 1].isalnum() and i[at + 1].isalnum()
    ]
    assert pieces

    async def found(term: str) -> list[str]:
        query = ListQuery(SessionFilter(q=term), "session_id", 50)
        async with store.engine.connect() as conn:
            page = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
        return [str(r["session_id"]) for r in page.page.rows]

    for piece in pieces[:6]:
        assert any(piece.lower() in i.lower() for i in await found(piece)), piece
        letters = piece.replace("-", "ж").replace("_", "ш")
        for term in (letters, letters.upper()):
            assert await found(term) == [], term


async def test_the_session_id_arm_is_an_index_condition_of_the_session_id_keys_index(
    seeded: Store,
) -> None:
    # the expression the search compares is the one the index holds
    # (`listing_indexes.KEYS_EXPRESSION`), or the planner could not use it at all
    store = seeded
    if store.engine.dialect.name != "postgresql":
        return  # SQLite has no such index: it compares the id as it is (tested above)
    for term in ("u-h", "Q-_-q", "x_9", "abcd"):
        statement = select(sessions.c.session_id).where(
            # as the directory's step reads it
            by_session_id(TENANT, literal(term), literal(like_pattern(term))),
            listed_condition(),  # with the next, the index's own condition
            active_condition(NOW),
        )
        compiled = statement.compile(
            dialect=store.engine.dialect, compile_kwargs={"literal_binds": True}
        )
        async with _only_index(store, "sessions", KEYS_INDEX_NAME) as conn:
            plan = "\n".join(r[0] for r in await conn.execute(text(f"EXPLAIN {compiled}")))
        assert f"Bitmap Index Scan on {KEYS_INDEX_NAME}" in plan, plan


@asynccontextmanager
async def _only_index(store: Store, table: str, index: str) -> AsyncIterator[AsyncConnection]:
    """A connection in a transaction, rolled back afterwards, where `table` has no index but
    `index` (its primary key's constraint dropped too) and the table scan is priced out: a
    plan is the index, or a table scan if it cannot be."""
    async with store.engine.connect() as conn:
        transaction = await conn.begin()
        try:
            others = await conn.execute(
                text("SELECT indexname FROM pg_indexes WHERE tablename = :t AND indexname != :i"),
                {"t": table, "i": index},
            )
            for (name,) in others.all():
                if name.endswith("_pkey"):
                    drop = f'ALTER TABLE {table} DROP CONSTRAINT "{name}" CASCADE'
                else:
                    drop = f'DROP INDEX "{name}"'
                await conn.execute(text(drop))
            await conn.execute(text("SET LOCAL enable_seqscan = off"))
            yield conn
        finally:
            await transaction.rollback()


async def test_planned_once_the_keyed_search_steps_still_read_their_index(seeded: Store) -> None:
    # planned once (`Store.search(keyed=True)`), the term is a parameter: the session id
    # keys are computed at the scan's start, and pg_trgm extracts the pattern's trigrams
    # then. Each must still be its index's condition, or the plan made once per connection
    # would read the table for every term
    store = seeded
    if store.engine.dialect.name != "postgresql":
        return  # SQLite plans each statement anew
    rest, _ = session_search._rest(SessionFilter(q="abcd"))
    cases: list[tuple[Any, dict[str, Any], str, str]] = [
        (
            session_search._ids_statement(rest, 40),
            {"i_tenant": TENANT, "i_now": NOW, "i_text": "abcd", "i_pattern": like_pattern("abcd")},
            KEYS_INDEX_NAME,
            "sessions",
        ),
        (
            session_search._window_statement("-last_activity_at", 3, rest, 40),
            {
                "a_tenant": TENANT,
                "a_now": NOW,
                "a_text": "abcd",
                "a_pattern": like_pattern("abcd"),
                "a_first": 0,
                "a_last": 2,
            },
            KEYS_INDEX_NAME,
            "sessions",
        ),
        (
            session_search._lookup_statement(True),
            {"l_tenant": TENANT, "l_pattern": like_pattern("smith")},
            "ix_listed_user_names_trgm",
            "listed_user_names",
        ),
    ]
    for statement, values, index, table in cases:
        driver = DriverSQL.of(statement, store.engine.dialect)
        assert driver is not None
        async with (
            _only_index(store, table, index) as conn,
            store.search(conn, capped=True, keyed=True),
        ):
            raw: Any = (await conn.get_raw_connection()).driver_connection
            await raw.execute(f"PREPARE keyed_step AS {driver.sql}")
            # EXECUTE takes no bound parameters: the values as literals of the test's own
            given = ", ".join(_literal(v) for v in driver.arguments(values))
            explained = await raw.fetch(f"EXPLAIN EXECUTE keyed_step({given})")
            await raw.execute("DEALLOCATE keyed_step")  # outlives the transaction
        plan = "\n".join(str(row[0]) for row in explained)
        assert f"Bitmap Index Scan on {index}" in plan, plan
        # planned once: the index's condition holds parameters, not the values
        condition = next(line for line in plan.splitlines() if "Index Cond" in line)
        assert re.search(r"\$\d+", condition) and "abcd" not in plan, plan


def _literal(value: Any) -> str:
    """A test's own value (text, a moment, a number) as an SQL literal."""
    if isinstance(value, datetime):
        return f"'{value.isoformat()}'::timestamptz"
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return str(int(value))


async def test_every_piece_of_a_session_id_is_found_through_the_keys_in_its_tenant_only(
    seeded: Store,
) -> None:
    # the keys of three characters and more, at every place in an id, in either case,
    # against the unindexed filter: a key cut at the wrong place, lowered otherwise than
    # `ILIKE` lowers, or shared across tenants would lose or add ids
    store = seeded
    rng = random.Random(801)
    ids = await _ids(store)
    others = [
        str(i)
        for (i,) in (
            await _select(
                store, select(sessions.c.session_id).where(sessions.c.tenant_id == OTHER_TENANT)
            )
        )
    ]
    terms = []
    for _ in range(30):
        source = rng.choice(ids + others)
        at, length = rng.randrange(0, 41), rng.choice([3, 3, 4, 5, 8, 43])
        piece = source[at : at + length]
        terms.append("".join(c.swapcase() if rng.random() < 0.5 else c for c in piece))
    # an id, its first and last three, its last four in capitals; and another tenant's piece
    mine = [ids[0], ids[0][:3], ids[0][-3:], ids[0][-4:].upper()]
    # the longest term the API takes, all handle characters: 254 keys, no id that long
    terms += [*mine, others[0][4:10], "-_" * 128, ids[0] * 5 + ids[0][:41]]
    for term in terms:
        expected = await unindexed_reference(store, ListQuery(SessionFilter(q=term), "session_id"))
        expected = [i for i in expected if term.lower() in i.lower()]  # the id arm's
        statement = (
            select(sessions.c.session_id)
            .where(by_session_id(TENANT, literal(term), literal(like_pattern(term))))
            .where(listed_condition(), active_condition(NOW))
            .order_by(binary_text(sessions.c.session_id))
        )
        async with store.engine.connect() as conn, store.search(conn, capped=False):
            found = [str(i) for (i,) in await conn.execute(statement)]
        assert found == expected, term
        assert not set(found) & set(others), term
        assert term not in mine or ids[0] in found, term


async def test_an_id_holding_a_terms_first_and_last_pieces_but_not_the_term_is_not_found(
    store: Store,
) -> None:
    # a term is looked up by its first and last keys only (revision 1201): an id holding both
    # apart is a candidate, which the recheck on the row must drop; one holding the term in
    # another case is found, whatever the order
    term = "abcDxyz"
    pad = "Q" * 43
    ids = {
        "apart": ("abc" + "0" * 20 + "xyz" + pad)[:43],
        "term": ("7-" + term.swapcase() + pad)[:43],
        "first only": ("abcdxy" + pad)[:43],
    }
    await insert(
        store.engine,
        [
            session_row(tenant_id=TENANT, session_id=i, user_name="Nobody Here")
            for i in ids.values()
        ],
    )
    statement = (
        select(sessions.c.session_id)
        .where(by_session_id(TENANT, literal(term), literal(like_pattern(term))))
        .where(listed_condition(), active_condition(NOW))
    )
    async with store.engine.connect() as conn, store.search(conn, capped=True):
        assert [str(i) for (i,) in await conn.execute(statement)] == [ids["term"]]
    for sort in SORTS:
        query = ListQuery(SessionFilter(q=term), sort, 50)
        async with store.engine.connect() as conn:
            found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
        assert [str(r["session_id"]) for r in found.page.rows] == [ids["term"]], sort
        assert (found.total, found.exact) == (1, True), sort


async def _select(store: Store, statement: Any) -> list[Any]:
    async with store.engine.connect() as conn:
        return list((await conn.execute(statement)).all())


@pytest.mark.parametrize("exact", [False, True])
async def test_later_pages_continue_the_search_and_carry_what_the_first_counted(
    seeded: Store, exact: bool
) -> None:
    store = seeded
    with bounded(store, 4, 3):
        for fragment in ("a", "ü", "SMI", "ø", "lovelace"):
            filter = SessionFilter(q=fragment)
            expected = await unindexed_reference(store, ListQuery(filter, "user_name"))
            request = PageRequest(filter, "user_name", 4, exact_total=exact)
            seen: list[str] = []
            totals: set[tuple[int, bool]] = set()
            while True:
                page = await list_sessions(request, ADMIN, store, CURSORS, lambda: NOW)
                seen += [str(r["session_id"]) for r in page.rows]
                totals.add((page.total, page.total_exact))
                if page.next_cursor is None:
                    break
                request = PageRequest(
                    filter, "user_name", 4, cursor=page.next_cursor, exact_total=exact
                )
            assert seen == expected, fragment
            assert len(totals) == 1, fragment  # every page carries the first one's count
            ((total, total_exact),) = totals
            if exact:
                assert total_exact and total == len(expected), fragment
            else:
                assert total == len(expected) if total_exact else 4 < total <= len(expected)


async def test_a_term_in_no_user_name_is_walked_on_the_session_id_alone(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # three characters in several session ids and in no user name: past the directory's
    # cap (tiny here) the walks leave out the user name arm (the directory, read in the
    # same snapshot, holds every listed session's name), and find what the filter finds
    store = seeded
    ids = await _ids(store)
    pieces: dict[str, int] = {}
    for handle_ in ids:
        for at in range(len(handle_) - 2):
            piece = handle_[at : at + 3].lower()
            if piece.isalnum() and not any(piece in name.lower() for name in NAMES):
                pieces[piece] = pieces.get(piece, 0) + 1
    piece = max(pieces, key=lambda p: pieces[p])
    assert pieces[piece] >= 2  # more than the cap of 1
    monkeypatch.setattr(session_search, "KEYS_READ", 0)  # no more read whole than the cap
    walks = _recorded(monkeypatch, "_walk")
    query = ListQuery(SessionFilter(q=piece.upper()), "-last_activity_at", 1)
    expected = await unindexed_reference(store, query)
    with bounded(store, 2, 1):
        async with store.engine.connect() as conn:
            found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
    assert [str(r["session_id"]) for r in found.page.rows] == expected[:1]
    assert found.total == len(expected) if found.exact else 1 < found.total <= len(expected)
    calls = [c.kwargs.get("names") for c in walks]
    if store.user_name_directory:
        assert calls and all(names == [] for names in calls), calls
    else:  # no directory: nothing says no name holds it
        assert calls and all(names is None for names in calls), calls


@pytest.mark.parametrize("merged_names", [3, 100])
async def test_a_walk_compares_the_names_the_directory_gave(
    seeded: Store, monkeypatch: pytest.MonkeyPatch, merged_names: int
) -> None:
    # `smi` is in four names (O'Brien-Smith, Smith, smith, SMITH): more than the directory
    # reads whole (one, here), not merged (a handle may hold three characters). When the
    # lookup read every name holding it (up to MERGED_NAMES), the walk compares those names
    # instead of matching `smi` in each entry's name; with more, it matches, as before
    store = seeded
    monkeypatch.setattr(session_search, "DIRECTORY_NAMES", 1)
    monkeypatch.setattr(session_search, "MERGED_NAMES", merged_names)
    walked = _recorded(monkeypatch, "_walk")
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    for sort in SORTS:
        for limit in (1, 4, 200):
            query = ListQuery(SessionFilter(q="sMi"), sort, limit)
            expected = await unindexed_reference(store, query)
            with bounded(store, 2000, 1):
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
            assert [str(r["session_id"]) for r in found.page.rows] == expected[:limit], sort
            assert found.total == len(expected) if found.exact else limit < found.total
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    calls = [c.kwargs.get("names") for c in walked]
    assert calls, "walked"
    walks = [s for s in sent if "LIMIT" in s and "w_m" in s]
    if store.user_name_directory and merged_names == 100:
        assert all(names == ["O'Brien-Smith", "SMITH", "Smith", "smith"] for names in calls)
        assert walks and not [
            w for w in walks if re.search(r"user_name\)?( COLLATE \"C\")? ILIKE", w)
        ]
        assert all('user_name COLLATE "C") = ANY' in w for w in walks)
    else:
        assert all(names is None for names in calls), calls
        if store.user_name_directory:
            # (tested as `walked_contains` tests each entry's name: `ILIKE`'s cheaper form)
            assert walks and all('(sessions.user_name) COLLATE "C" ILIKE' in w for w in walks)


def _named(prefix: str, names: list[str]) -> list[dict[str, Any]]:
    """Sessions of TENANT, one per name, with handles of their own."""
    return [
        session_row(session_id=session_handle(TENANT, f"{prefix}-{i}"), user_name=name)
        for i, name in enumerate(names)
    ]


def _after_the_window(
    monkeypatch: pytest.MonkeyPatch, commit: Callable[[], Awaitable[None]]
) -> None:
    """Run `commit` (the registry, committing meanwhile) once a search's window is read."""
    walk_step = session_search._walk

    async def walk_then_commit(*args: Any, **kwargs: Any) -> Any:
        found = await walk_step(*args, **kwargs)
        if isinstance(found, session_search._Window):
            await commit()
        return found

    monkeypatch.setattr(session_search, "_walk", walk_then_commit)


async def test_a_row_moved_past_the_window_while_walking_on_is_listed_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ascending by name; the window (2 rows) holds one match, then the registry renames that
    # session so that it sorts after the window's last row before the walk on reads on
    rows = _named("m", ["a match 1", "b other", "c other", "d match", "e match"])
    await insert(store.engine, rows)
    moved = rows[0]["session_id"]

    async def rename() -> None:
        async with store.engine.begin() as conn:
            await conn.execute(
                sessions.update()
                .where(sessions.c.session_id == moved)
                .values(user_name="z match, renamed")
            )

    _after_the_window(monkeypatch, rename)
    query = ListQuery(SessionFilter(user_name="match"), "user_name", 10)  # walked on both
    with bounded(store, 2, 1):
        async with store.engine.connect() as conn:
            found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
    listed = [str(r["session_id"]) for r in found.page.rows]
    assert sorted(set(listed)) == sorted(listed), listed  # no session twice
    assert moved in listed and len(listed) == 3


async def test_a_search_reads_one_snapshot_whatever_commits_between_its_steps(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # ascending by name, a window of 2 rows with one match: while the search walks on, the
    # registry commits a new match that sorts first and ends one the window did not reach.
    # Read in one snapshot, the page and its count are those of the moment the search began
    rows = _named("n", ["b match", "c other", "d other", "e match", "f match"])
    await insert(store.engine, rows)
    # `user_name`, not `q`: the walk's case on PostgreSQL too (the directory answers `q`)
    query = ListQuery(SessionFilter(user_name="match"), "user_name", 10)
    before = await unindexed_reference(store, query)

    async def add_one_end_one() -> None:
        await insert(store.engine, _named("new", ["a match"]))
        async with store.engine.begin() as conn:
            await conn.execute(
                sessions.update()
                .where(sessions.c.session_id == rows[4]["session_id"])
                .values(state="terminated")
            )

    _after_the_window(monkeypatch, add_one_end_one)
    with bounded(store, 2, 1):
        async with store.engine.connect() as conn:
            found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
    assert [str(r["session_id"]) for r in found.page.rows] == before
    assert (found.total, found.exact) == (3, True)
    assert await unindexed_reference(store, query) != before  # the commits did land, after it


async def test_no_character_said_to_be_in_no_handle_lowers_onto_one_in_the_database(
    store: Store,
) -> None:
    # `may_be_in_handle` decides with Python's case mappings whether the session id arm is
    # read at all; the database's own `lower()` (what ILIKE compares) must agree
    plane = [chr(i) for i in range(0x80, 0x10000) if not 0xD800 <= i < 0xE000]
    excluded = [c for c in plane if not may_be_in_handle(c)]
    assert "ü" in excluded and "\u212a" not in excluded
    character: ColumnClause[str] = literal_column("c")
    lowered = select(character, func.lower(character)).select_from(
        func.unnest(literal(excluded, ARRAY(String))).alias("c")
    )
    async with store.engine.connect() as conn:
        if conn.dialect.name != "postgresql":  # SQLite's lower() and LIKE fold ASCII only
            return
        folded = (await conn.execute(lowered)).all()
    assert len(folded) == len(excluded)
    assert [(c, f) for c, f in folded if set(f) & HANDLE_CHARACTERS] == []


async def test_another_tenants_names_and_session_ids_stay_out_of_the_directory_paths(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the directory and the session id arm compare the tenant separately (the id arm by code
    # point, as a filter): an admin searching another tenant's name or id fragment finds
    # nothing, though the same searches in that tenant find its sessions
    theirs = [
        session_row(
            tenant_id=OTHER_TENANT,
            session_id=session_handle(OTHER_TENANT, f"x-{i}"),
            user_name=f"Secret Person {i % 3}",
        )
        for i in range(30)
    ]
    ours = [session_row(session_id=session_handle(TENANT, "o-1"), user_name="Our Person")]
    await insert(store.engine, theirs + ours)
    lookups, merges = _recorded(monkeypatch, "_by_directory"), _recorded(monkeypatch, "_merged")
    fragment = str(theirs[0]["session_id"])[5:13]
    searches: list[tuple[str, Sort]] = [
        ("secret person", "-last_activity_at"),
        ("SECRET", "user_name"),
        (fragment, "-last_activity_at"),
    ]
    for q, sort in searches:
        query = ListQuery(SessionFilter(q=q), sort, 10)
        for walk, cap in [(2000, 5000), (4, 3)]:  # the cap far off; a tiny cap, passed
            for tenant in (TENANT, OTHER_TENANT):
                expected = await unindexed_reference(store, query, tenant)
                # what they hold is there to be found: 30 by name, theirs[0] by its id
                assert expected if tenant == OTHER_TENANT else expected == [], (q, tenant)
                lookups.clear()
                merges.clear()
                with bounded(store, walk, cap):
                    async with store.engine.connect() as conn:
                        found = await session_search.first_page_and_total(
                            store, conn, query, tenant, NOW
                        )
                case = (q, walk, tenant)
                got = [str(r["session_id"]) for r in found.page.rows]
                assert got == expected[:10], case
                if found.exact:
                    assert found.total == len(expected), case
                else:
                    assert 10 < found.total <= len(expected), case
                if store.user_name_directory:
                    # the directory answered, looking up the searching tenant's names alone,
                    # and merged their sessions with the session id arm's where it had any
                    named = sorted(
                        {
                            str(r["user_name"])
                            for r in theirs + ours
                            if r["tenant_id"] == tenant and q.lower() in str(r["user_name"]).lower()
                        }
                    )
                    [lookup] = lookups
                    assert (lookup.result[0] is not None, lookup.result[2]) == (True, named), case
                    assert len(merges) == (1 if named else 0), case


async def test_a_merged_session_in_both_arms_is_listed_and_counted_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the merge appends its arms: a session whose name and id both hold the term must come from
    # the names' arm alone
    piece = "Qz7k"
    rows = [session_row(user_name=f"Ann {piece} {i % 3}") for i in range(8)]
    rows += [
        session_row(session_id=f"{piece}1" + "A" * 38, user_name=f"Bob {piece.upper()}"),  # both
        session_row(session_id=f"x{piece}" + "B" * 38, user_name="Carol"),  # the id arm's
        session_row(user_name="Dave"),  # neither
    ]
    await insert(store.engine, rows)
    merges = _recorded(monkeypatch, "_merged")
    for sort in ("-last_activity_at", "user_name"):
        for limit in (3, 20):
            query = ListQuery(SessionFilter(q=piece.lower()), sort, limit)
            expected = await unindexed_reference(store, query)
            with bounded(store, 4, 3):  # the names' sessions past the cap, the ids' not: merged
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
            got = [str(r["session_id"]) for r in found.page.rows]
            assert len(expected) == 10 and got == expected[:limit], (sort, limit)
            # every match read once: exact when the names had no more than the page
            assert (found.total, found.exact) == (10, True) if limit == 20 else found.total > 3
    assert len(merges) == 4 if store.user_name_directory else merges == []


async def test_a_merge_places_each_session_id_match_by_its_own_key(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the session id arm's keys come from the ids step, not from the merge reading the rows
    # again: each must stay with its session, in both merged orders and both directions
    piece = "Wq4j"
    rows = [
        session_row(
            user_name=f"Ann {piece} {i % 2}",
            last_activity_at=NOW - timedelta(minutes=2 * i),
        )
        for i in range(8)
    ]
    for i, name in enumerate(["Abe", "Bea", "Carol", "Mia", "Zoe"]):
        rows.append(
            session_row(
                session_id=f"{piece}{i}" + "C" * 38,
                user_name=name,
                last_activity_at=NOW - timedelta(minutes=[3, 0, 9, 14, 5][i]),
            )
        )
    await insert(store.engine, rows)
    merges = _recorded(monkeypatch, "_merged")
    sorts: list[Sort] = ["-last_activity_at", "last_activity_at", "user_name", "-user_name"]
    for sort in sorts:
        for limit in (2, 4, 7, 20):
            query = ListQuery(SessionFilter(q=piece.upper()), sort, limit)
            expected = await unindexed_reference(store, query)
            with bounded(store, 4, 6):  # the names' 8 sessions past the cap, the ids' 5 not
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
            got = [str(r["session_id"]) for r in found.page.rows]
            assert len(expected) == 13 and got == expected[:limit], (sort, limit)
    assert len(merges) == 16 if store.user_name_directory else merges == []


def _windows_walked(monkeypatch: pytest.MonkeyPatch) -> list[int | None]:
    """The window of each walk the bounded path starts (None: as far as the page needs)."""
    windows: list[int | None] = []
    walk = session_search._walk

    async def walked(*args: Any, **kwargs: Any) -> Any:
        if len(args) < 7 or args[6] is None:  # a walk started, not one walked on
            windows.append(args[5])
        return await walk(*args, **kwargs)

    monkeypatch.setattr(session_search, "_walk", walked)
    return windows


async def test_a_term_the_trigram_step_cannot_answer_is_walked_once_without_a_window(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the window only tells whether the trigram step should answer: for one or two characters
    # (no rare trigram) the walk goes as far as the page needs in one statement
    store = seeded
    windows = _windows_walked(monkeypatch)
    with bounded(store, 4, 3):
        for text, windowed in [("a", False), ("Sm", False), ("ll", False), ("lovelace", True)]:
            windows.clear()
            query = ListQuery(SessionFilter(user_name=text), "-last_activity_at", 3)
            expected = await unindexed_reference(store, query)
            async with store.engine.connect() as conn:
                found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
            assert [str(r["session_id"]) for r in found.page.rows] == expected[:3], text
            assert found.total == len(expected) if found.exact else found.total > 3, text
            assert windows == ([4] if windowed else [None]), text


async def test_a_term_naming_a_session_type_past_the_cap_is_walked_at_once(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # `obi` is in "mobile": every mobile session matches. With more of them than the cap the
    # trigram step could answer nothing, so the walk goes to the page without a window; with
    # fewer, or another condition that leaves fewer matches than the type holds, or a filter
    # keeping that type out, the window decides as before
    rows = [session_row(session_type="mobile", user_id=f"m-{i}") for i in range(5)]
    rows += [session_row(user_name=f"Obi {i}" if i < 2 else f"Ann {i}") for i in range(6)]
    await insert(store.engine, rows)
    windows = _windows_walked(monkeypatch)
    trigram_steps = _recorded(monkeypatch, "_trigram")
    cases: list[tuple[int, dict[str, Any], bool]] = [
        (3, {}, False),  # 5 mobile sessions, cap 3: walked at once
        (3, {"session_type": ["mobile"]}, False),
        (3, {"session_type": ["browser"]}, True),  # the type arm is filtered out
        (3, {"user_id": "m-1"}, True),  # another condition: fewer matches than counted
        (6, {}, True),  # within the cap
    ]
    for cap, other, windowed in cases:
        windows.clear()
        trigram_steps.clear()
        query = ListQuery(SessionFilter(q="OBI", **other), "-last_activity_at", 2)
        expected = await unindexed_reference(store, query)
        with bounded(store, 4, cap):
            async with store.engine.connect() as conn:
                found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
        assert [str(r["session_id"]) for r in found.page.rows] == expected[:2], (cap, other)
        assert found.total == len(expected) if found.exact else found.total > 2, (cap, other)
        assert windows[:1] == ([4] if windowed else [None]), (cap, other)
        if not windowed:
            assert trigram_steps == [], (cap, other)


async def test_names_past_the_cap_leave_the_walk_no_window_and_the_trigram_step_no_turn(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # three characters in more names than the directory reads whole, not mergeable (a handle
    # may hold them): the names' sessions are counted up to the cap, and past it neither the
    # window nor the trigram step could answer
    monkeypatch.setattr(session_search, "DIRECTORY_NAMES", 2)
    ids = (f"{i:043d}" for i in range(20))  # digits: no id holds either term
    crowded = [session_row(session_id=next(ids), user_name=f"Xqv {n}") for n in "ABCABC"]  # 6
    sparse = [session_row(session_id=next(ids), user_name=f"Kjw {n}") for n in "ABC"]  # 3
    other = session_row(session_id=next(ids), user_name="Other")
    await insert(store.engine, [*crowded, *sparse, other])
    windows = _windows_walked(monkeypatch)
    trigram_steps = _recorded(monkeypatch, "_trigram")
    for term, matches in [("xqv", 6), ("KJW", 3)]:
        windows.clear()
        trigram_steps.clear()
        query = ListQuery(SessionFilter(q=term), "-last_activity_at", 2)
        expected = await unindexed_reference(store, query)
        with bounded(store, 4, 3):
            async with store.engine.connect() as conn:
                found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
        assert len(expected) == matches
        assert [str(r["session_id"]) for r in found.page.rows] == expected[:2], term
        assert found.total == matches if found.exact else 2 < found.total <= matches, term
        if store.user_name_directory and matches > 3:
            # the count said at least cap + 1: the total says so too
            assert (windows, len(trigram_steps), found.total, found.exact) == ([None], 0, 4, False)
        else:  # a window first: the trigram step may answer (the matches are at the cap)
            assert windows[:1] == [4], term


async def test_names_common_in_their_tenant_are_walked_to_the_page_not_read_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Three characters in more names than the directory reads whole, their sessions counted
    within the cap: where they are so common in the tenant that walking to the page's last
    match reads fewer entries than the trigram step would read matches (`keys_cap`'s
    measure: count ** 2 > KEYS_READ * tenant), the walk answers, the names' count the
    total's lower bound (a session whose id holds the term under another name is listed in
    its place, counted by `count=exact`); where they are rare, the trigram step still reads
    them all for an exact total."""
    monkeypatch.setattr(session_search, "DIRECTORY_NAMES", 2)
    ids = (f"{i:043d}" for i in range(1000))  # digits: no id holds the term

    def named(tenant: str, name: str, session_id: str | None = None) -> dict[str, Any]:
        return session_row(tenant_id=tenant, session_id=session_id or next(ids), user_name=name)

    common = [named(TENANT, f"Xqv {n}") for n in "ABCD" * 5]  # 21 of 22: 441 > 12 * 22
    common.append(named(TENANT, "Zed", "XqV" + next(ids)[3:]))  # its id holds the term
    common.append(named(TENANT, "Xqv A", "xQv" + next(ids)[3:]))  # both: counted once
    rare = [named(OTHER_TENANT, f"Xqv {n}") for n in "ABCD" * 5]  # 20 of 220: 400 <= 12 * 220
    others = [named(OTHER_TENANT, f"Other {i}") for i in range(200)]
    await insert(store.engine, [*common, *rare, *others])
    windows = _windows_walked(monkeypatch)
    trigram_steps = _recorded(monkeypatch, "_trigram")
    query = ListQuery(SessionFilter(q="xqv"), "-last_activity_at", 2)
    for tenant, matches in ((TENANT, 22), (OTHER_TENANT, 20)):
        windows.clear()
        trigram_steps.clear()
        found = await _searched(store, query, tenant, NOW, 4, 50)
        expected = [str(r["session_id"]) for r in sorted(
            (r for r in common + rare if r["tenant_id"] == tenant),
            key=lambda r: (r["last_activity_at"], r["session_id"]),
            reverse=True,
        )]  # fmt: skip
        assert len(expected) == matches
        assert [str(r["session_id"]) for r in found.page.rows] == expected[:2], tenant
        assert found.total == matches if found.exact else 2 < found.total <= matches, tenant
        if store.user_name_directory and tenant == TENANT:  # common: one walk to the page
            assert (windows, len(trigram_steps), found.total, found.exact) == ([None], 0, 21, False)
        elif store.user_name_directory:  # rare: a window, then the trigram step reads the 20
            assert (windows, len(trigram_steps), found.total, found.exact) == ([4], 1, 20, True)
    assert await unindexed_reference(store, query) == [
        str(r["session_id"]) for r in sorted(
            common, key=lambda r: (r["last_activity_at"], r["session_id"]), reverse=True
        )
    ]  # fmt: skip


async def _searched(
    store: Store, query: ListQuery, tenant: str, moment: datetime, walk: int | None, cap: int
) -> session_search.SearchResult:
    """`first_page_and_total` on a connection of its own, the store bounded to `walk`, `cap`."""
    with bounded(store, walk, cap):
        async with store.engine.connect() as conn:
            return await session_search.first_page_and_total(store, conn, query, tenant, moment)


def _shared_names(sessions_per_tenant: dict[str, int]) -> list[dict[str, Any]]:
    """Each tenant's sessions, named `Shared Name 0` and `Shared Name 1` in turn, the i-th
    ending 5 + i minutes after NOW."""
    return [
        session_row(
            tenant_id=tenant,
            session_id=session_handle(tenant, f"n-{tenant}-{i}"),
            user_name=f"Shared Name {i % 2}",
            expires_at=NOW + timedelta(minutes=5 + i),
        )
        for tenant, count in sessions_per_tenant.items()
        for i in range(count)
    ]


@pytest.mark.parametrize("term", ["shared name", "E"])  # the directory's paths; a walk
async def test_the_searchs_statements_built_once_bind_each_searchs_tenant_and_moment(
    store: Store, term: str
) -> None:
    # the capped read, the merge and the walks are built once per shape of query: one
    # tenant's search must not answer with what another's, or an earlier moment's, bound
    rows = _shared_names({TENANT: 4, OTHER_TENANT: 2})
    await insert(store.engine, rows)
    for walk, cap in [(2000, 5000), (4, 3)]:  # answered whole; merged past a tiny cap
        for tenant, moment, matches in [
            (TENANT, NOW, 4),
            (OTHER_TENANT, NOW, 2),
            (TENANT, NOW + timedelta(minutes=7), 1),  # three ended by then
            (OTHER_TENANT, NOW + timedelta(minutes=7), 0),
        ]:
            query = ListQuery(SessionFilter(q=term), "-last_activity_at", 10)
            found = await _searched(store, query, tenant, moment, walk, cap)
            expected = [
                str(r["session_id"])
                for r in sorted(rows, key=lambda r: r["last_activity_at"], reverse=True)
                if r["tenant_id"] == tenant and r["expires_at"] > moment
            ]
            assert len(expected) == matches
            got = [str(r["session_id"]) for r in found.page.rows]
            assert (got, found.total, found.exact) == (expected, matches, True), (tenant, walk)


async def test_the_trigram_step_and_the_one_pass_built_once_bind_each_searchs_values(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a user name condition (no directory): one pass over every match when the store does
    # not walk (SQLite; `count=exact`), else a window then the trigram step. Each statement
    # is built once per shape of filter: another tenant, moment or name is bound, never
    # what the first search that built it had
    rows = _shared_names({TENANT: 6, OTHER_TENANT: 2})
    await insert(store.engine, rows)
    trigram_steps = _recorded(monkeypatch, "_trigram")
    built = [session_search._trigram_statement, session_search._one_pass_statement]
    misses = [b.cache_info().misses for b in built]
    searches = [
        (TENANT, NOW, "name 0"),
        (TENANT, NOW, "name 1"),
        (OTHER_TENANT, NOW, "name 0"),
        (OTHER_TENANT, NOW, "name 1"),
        (TENANT, NOW + timedelta(minutes=7), "name 1"),  # two of its three ended by then
        (TENANT, NOW + timedelta(minutes=7), "name 0"),
    ]
    for walk in (None, 2):  # one pass; a window of two, then the trigram step
        for tenant, moment, name in searches:
            trigram_steps.clear()
            query = ListQuery(SessionFilter(user_name=name), "-last_activity_at", 10)
            found = await _searched(store, query, tenant, moment, walk, 5000)
            expected = [
                str(r["session_id"])
                for r in sorted(rows, key=lambda r: r["last_activity_at"], reverse=True)
                if r["tenant_id"] == tenant
                and r["expires_at"] > moment
                and r["user_name"].lower().endswith(name)
            ]
            got = [str(r["session_id"]) for r in found.page.rows]
            assert (got, found.total, found.exact) == (expected, len(expected), True), (
                walk,
                tenant,
                name,
            )
            assert len(trigram_steps) == (0 if walk is None else 1)
    # one shape: each statement built at most once (none when an earlier test built it)
    grown = [b.cache_info().misses - m for b, m in zip(built, misses, strict=True)]
    assert all(n <= 1 for n in grown), grown


async def test_a_term_the_trigram_index_cannot_look_up_matches_the_lowered_names(
    seeded: Store,
) -> None:
    # `ü` (no trigram) reads every name of the tenant: compared lowered once (revision 0701),
    # the same names as ILIKE; `müller` is looked up in the trigram index as before
    store = seeded
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    lookups = {}
    switches = {}
    for term in ("ü", "Ü", "ø", "müller"):
        sent.clear()
        query = ListQuery(SessionFilter(q=term), "-last_activity_at", 3)
        async with store.engine.connect() as conn:
            found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
        expected = await unindexed_reference(store, query)
        assert [str(r["session_id"]) for r in found.page.rows] == expected[:3], term
        lookups[term] = [s for s in sent if "FROM listed_user_names" in s]
        switches[term] = len([s for s in sent if "set_config" in s])
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    if not store.user_name_directory:
        assert not any(lookups.values())
        return
    for term in ("ü", "Ü", "ø"):
        ((lookup,),) = [lookups[term]]
        assert "user_name_folded LIKE lower(" in lookup and "ILIKE" not in lookup, term
        # read in order as a walk reads (index-only), then the merge's keyed walk (planned
        # once per connection: no pattern in it)
        assert switches[term] == 2, term
    ((lookup,),) = [lookups["müller"]]
    assert "listed_user_names.user_name ILIKE" in lookup
    assert switches["müller"] == 2  # the trigram lookup's, then the merge's


async def test_few_names_are_merged_and_counted_not_read_whole(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a full name (no handle holds a space) in an order kept per name: its first sessions are
    # merged and its sessions counted index-only, so the total is exact within the cap
    # without reading every session's row; past the cap it is a lower bound
    rows = [session_row(user_name="Ann Lee" if i % 4 else "Ann Leeds") for i in range(40)]
    rows += [session_row(user_name="Bob Stone") for _ in range(5)]
    await insert(store.engine, rows)
    merged = _recorded(monkeypatch, "_merged")
    for sort in ("-last_activity_at", "user_name", "ip_address"):
        for cap, limit in ((100, 5), (100, 50), (20, 5)):
            query = ListQuery(SessionFilter(q="ann lee"), sort, limit)
            expected = await unindexed_reference(store, query)
            with bounded(store, 2000, cap):
                async with store.engine.connect() as conn:
                    found = await session_search.first_page_and_total(
                        store, conn, query, TENANT, NOW
                    )
            case = (sort, cap, limit)
            assert (
                len(expected) == 40
                and [str(r["session_id"]) for r in found.page.rows] == expected[:limit]
            ), case
            if not store.user_name_directory:  # walked: exact, or at least the page and one
                assert found.total == 40 if found.exact else limit < found.total <= 40, case
            elif cap == 100 or limit == 50:
                assert (found.total, found.exact) == (40, True), case
            else:  # 40 sessions past a cap of 20: at least 21
                assert not found.exact and 20 < found.total <= 40, case
    merges = [c.kwargs.get("counted", False) for c in merged]
    if store.user_name_directory:  # merged where the order is kept per name, counted
        assert merges == [True] * 6, merges
    else:
        assert merges == []


@pytest.mark.parametrize("sort", ["-last_activity_at", "last_activity_at"])
async def test_a_merge_reads_each_name_up_to_the_mark_of_their_first_sessions(
    store: Store, monkeypatch: pytest.MonkeyPatch, sort: Sort
) -> None:
    # the merge places a mark at the (limit + 1)-th of each name's first few sessions and
    # reads no name past it: names of very different sizes (the page may be one name's
    # alone), activity times shared across names (ties broken by the session id), a name
    # with a single session, and pages larger than the first sessions read
    rng = random.Random(23)
    rows = []
    for i, size in enumerate([60, 1, 2, 3, 5, 8, 13, 21, 1, 1, 40, 4]):
        for _ in range(size):
            minutes = rng.randrange(30)  # few distinct times: many ties
            rows.append(
                session_row(
                    user_name=f"Quinn {i:02d}",
                    last_activity_at=NOW - timedelta(minutes=minutes),
                    expires_at=NOW + timedelta(hours=1),
                )
            )
    await insert(store.engine, rows)
    marks: list[int] = []
    firsts = session_search._firsts

    def counting(limit: int, names: int) -> int:
        marks.append(firsts(limit, names))
        return marks[-1]

    monkeypatch.setattr(session_search, "_firsts", counting)
    for limit in (1, 2, 5, 12, 30, 200):
        query = ListQuery(SessionFilter(q="quinn"), sort, limit)
        expected = await unindexed_reference(store, query)
        with bounded(store, 2000, 50):  # 12 names, more sessions than the cap: merged
            async with store.engine.connect() as conn:
                found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
        got = [str(r["session_id"]) for r in found.page.rows]
        assert len(expected) == 159 and got == expected[:limit], limit
        assert found.total == 159 if found.exact else limit < found.total <= 159, limit
    if store.user_name_directory:  # every merge placed a mark (fewer firsts than the page)
        assert len(marks) == 6 and min(marks) < 30, marks


@pytest.mark.parametrize("sort", ["-last_activity_at", "ip_address"])
async def test_a_piece_of_a_session_id_in_no_name_is_read_without_a_names_arm(
    seeded: Store, sort: Sort
) -> None:
    # six characters of a handle that no user name holds: the directory finds no name, and
    # its capped read is the session id arm alone (an empty names' arm, bound, made the
    # table's filter test the id a second time on every candidate)
    store = seeded
    piece = session_handle(TENANT, "c-7")[10:16]
    assert not [n for n in NAMES if piece.lower() in n.lower()]
    sent: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        sent.append(statement)

    event.listen(store.engine.sync_engine, "before_cursor_execute", record)
    query = ListQuery(SessionFilter(q=piece.swapcase()), sort, 3)
    expected = await unindexed_reference(store, query)
    async with store.engine.connect() as conn:
        found = await session_search.first_page_and_total(store, conn, query, TENANT, NOW)
    event.remove(store.engine.sync_engine, "before_cursor_execute", record)
    assert expected and [str(r["session_id"]) for r in found.page.rows] == expected[:3]
    assert (found.total, found.exact) == (len(expected), True)
    if store.user_name_directory:
        capped = [s for s in sent if "OVER ()" in s]
        assert capped and not [s for s in capped if "user_name" in s.split("FROM sessions")[1]]


async def test_only_statements_binding_keys_alone_are_planned_once(
    seeded: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a generic plan (made once per connection) is safe only where the plan cannot depend on
    # the values: a statement binding a filter's other conditions, or a pattern some index
    # may or may not answer, runs planned for its values, every time; the merge binds keys
    # alone (the tenant, names, ids, the moment) and is planned once (1.2 ms of planning
    # against 0.7 of execution at ten million sessions), and so are the two steps whose
    # pattern one index answers whatever it is: the directory's trigram lookup of a
    # selective term and the session id keys of a term (0.7-0.8 ms of planning)
    store = seeded
    seen: list[tuple[frozenset[str], str | None]] = []
    run = store.run
    postgres = store.engine.dialect.name == "postgresql"

    async def noting(conn: Any, statement: Any, values: Any) -> Any:
        mode = None
        if postgres:
            mode = str((await conn.exec_driver_sql("SHOW plan_cache_mode")).scalar_one())
        seen.append((frozenset(values), mode))
        return await run(conn, statement, values)

    monkeypatch.setattr(store, "run", noting)
    searched = 0
    for term in [*FRAGMENTS, *NAMES[:4]]:
        for sort in SORTS:
            for other in ({}, {"session_type": ["mobile"]}):
                query = ListQuery(SessionFilter(q=term, **other), sort, 3)
                found = await _searched(store, query, TENANT, NOW, store.search_walk, 40)
                expected = await unindexed_reference(store, query)
                assert [str(r["session_id"]) for r in found.page.rows] == expected[:3], query
                searched += 1
    assert searched == (len(FRAGMENTS) + 4) * len(SORTS) * 2
    if not postgres:  # SQLite keeps no plan across statements
        assert {mode for _, mode in seen} == {None}
        return
    generic = [keys for keys, mode in seen if mode == "force_generic_plan"]
    assert generic, "no statement was planned once"
    lookup, ids = {"l_tenant", "l_pattern"}, {"i_tenant", "i_now", "i_text", "i_pattern"}
    window = {"a_tenant", "a_now", "a_text", "a_pattern", "a_first", "a_last"}
    for keys in generic:
        assert not any(k.startswith("f_") for k in keys), keys  # another condition's value
        if any(k.endswith(("_pattern", "_text")) for k in keys):
            assert keys in (lookup, ids, window), keys
        else:
            assert "m_tenant" in keys or "e_tenant" in keys or "c_tenant" in keys, keys
    merges = [mode for keys, mode in seen if "m_tenant" in keys]
    assert "force_generic_plan" in merges and "force_custom_plan" in merges
    steps = [mode for keys, mode in seen if "i_tenant" in keys]
    assert "force_generic_plan" in steps and "force_custom_plan" in steps  # with session_type
    assert lookup in generic
