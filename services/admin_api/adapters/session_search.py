"""The first page of a text search, and its total: exact, or a lower bound when counting every
match would cost more than the page.

A search (`q`, `user_name`, `session_id`, `device`) is read one of two ways, as the store says
(`Store.search_walk`):

- **One pass** (SQLite; and any store when the caller asks for the exact total): every match is
  read once (on PostgreSQL through the trigram indexes, each rechecked on the table), counted,
  and the page's rows are its first ones in the sort order.
- **Bounded** (PostgreSQL): the cost follows the page, not the number of matches.
  0. *Directory* (`_by_directory`): when `q` is the only text condition and names no session
     type, it is looked up in the tenant's user names (`listed_user_names`, far fewer than
     its sessions). In an order kept per name, in up to `MERGED_NAMES` names, each name's
     first page is merged with the sessions whose id holds `q` (`_merged`; in a few names
     their sessions are counted too, index-only, so the total is exact within the cap);
     in another order, in a few names, their sessions and those whose id holds `q` are read
     whole (exact). Otherwise, or past the cap, the steps below (past the cap without
     the trigram step, which would read the same matches and stop at the same cap). In more
     names than it reads whole, where no merge answers, their sessions are counted up to the
     cap first: past it, the same; within it, so common in the tenant that walking to the
     page reads fewer entries than the trigram step would read matches (`keys_cap`'s
     measure), one walk to the page, the count the total's lower bound.
     Three characters of a session id expected in more of the tenant's ids than
     `WINDOWED_IDS` (millions of sessions), in no user name, in the order of last
     activity, are read from the tenant's newest (oldest) buckets of last activity first
     (`_by_activity`: the keys index's second column), a window at a time, until one holds
     the page: a heap page per match in the window, not in the tenant; the total a lower
     bound unless the window spans the tenant.
  1. *Walk*: the first `search_walk` rows of the tenant's sort order, read as an index-only
     scan of the sort index (which carries what the search compares), stop at the page's
     `limit + 1`-th match. A common term (a frequent name, one or two characters) fills the
     page here, having read about `limit / share of matching rows` rows. Having walked the
     tenant's every row, the count is exact. The window only tells whether the trigram step
     should answer: when it cannot (no rare trigram, or past the cap already), step 3 is
     taken at once, one walk as far as the page needs.
  2. *Trigram*: the trigram indexes give the matches of a term with a rare trigram
     (`trigram_selective`: other terms' trigrams are in most rows; in the session id's index
     any three characters, `-` and `_` included), in no order; at most
     `search_cap + 1` are read. With no more than `search_cap`, they are all there: the page
     is their first rows in the sort order and the total is exact.
  3. *Walk on*: otherwise (a term matching more than `search_cap` rows but under the walk's
     share, or a short or split term rarer than the walk could tell), the sort order is
     walked until the page is full or the tenant's rows end, the filter tested on each index
     entry as it is read. When the walk's window held some matches and their share of the
     tenant's sessions (the kept count) promises more than `search_cap`, the trigram step is
     skipped: it could only stop at the cap.

  A page full before every match was seen answers `total_exact = False` with `total` the
  matches seen so far (at least `limit + 1`, or `search_cap + 1` after the trigram step): a
  lower bound. The exact total is one request away (`count=exact`), paid only when needed.

Whichever way, the page's rows are exactly the first `limit` matches of `filter_clause` in the
query's order: the steps only choose which rows to read, never what matches.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, TypeAlias

from sqlalchemy import (
    ARRAY,
    BigInteger,
    ColumnElement,
    DateTime,
    Integer,
    String,
    and_,
    any_,
    bindparam,
    cast,
    false,
    func,
    literal,
    literal_column,
    or_,
    select,
    true,
    tuple_,
    union_all,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from admin_api.adapters.session_listing import (
    SORT_KEYS,
    Page,
    after_clause,
    as_page,
    ordered,
    page_columns,
    rows_of,
)
from admin_api.domain.listing import ListQuery, Sort
from read_model.active import LISTED, Moment, TenantRef, active_condition, listed_condition
from read_model.session_query import (
    KEY_LENGTH,
    TEXT_CONDITIONS,
    FilterShape,
    QShape,
    active_clause,
    activity_bucket,
    binary_text,
    by_session_id,
    conditions_clause,
    filter_clause,
    filter_parameters,
    handles_holding,
    in_activity_window,
    like_pattern,
    may_be_in_handle,
    q_clause,
    q_shape,
    types_containing,
)
from read_model.store import Store, row_dicts
from read_model.tables import listed_user_names, sessions
from session_contracts.models import SessionFilter, SessionType

TRIGRAM = 3
"""The shortest text a trigram index can look up."""
DIRECTORY_NAMES = 50
"""The most user names whose sessions a search reads whole through the directory."""
MERGED_NAMES = 100
"""The most user names whose first sessions a search merges in the page's order; a term in
more names is common, and the walk finds its page sooner."""
MERGED_SORTS = frozenset({"last_activity_at", "user_name"})
"""The orders a B-tree keeps per user name (`_merged`)."""
MERGED_HANDLE_FRAGMENT = 4
"""The shortest text that may be part of a session id whose matching ids a merge reads whole:
a handle (43 characters) holds a given three in about one case of 800 (hundreds of ids per
tenant, every one read and sorted), four in one of 26,000."""
KEYS_READ = 12
"""`keys_cap`'s measure: the 51 matches a walk stops at, times what the walk pays for an
index entry over what a read through the session id keys pays for a match. Measured at ten
million sessions (a tenant of four million), three characters in 5,000 of its ids: read
17-21 ms (3.5 µs a match), walked 29-38 ms (0.85 µs an entry): 51 * 0.85 / 3.5."""
WINDOWED_IDS = 500
"""The ids expected to hold three characters (`handles_holding`) past which, in the order of
last activity and in no user name, they are read from the tenant's newest (oldest) buckets
first (`_by_activity`) instead of whole: a heap page each, about 8 µs warm, against the
window's read of the bucket's activity key (about 1.3 ms at ten million sessions) and a heap
page per match in the window. `5V0` (digits: in about 1,250 ids of a tenant of four
million) took 6-11 ms read whole."""
ACTIVITY_WINDOWS = (1, 4, 16, 64)
"""The buckets of last activity (ten minutes each) `_by_activity` reads, newest first, in
turn until one holds the page: up to about ten hours of the tenant's activity."""
_s = sessions.c


def trigram_selective(text: str) -> bool:
    """Whether the trigram indexes find `text`'s matches by reading few entries.

    pg_trgm splits text into words at every character that is not a letter or a digit (`-`,
    `_`, a space) and pads each word with blanks where the term bounds it (two before, one
    after; not at the pattern's ends, which are wildcards). A word of three characters gives
    a whole trigram (`m0t`: about one handle of 800); one of two next to such a character a
    trigram with a blank (`-35`: a word starting with 35; `k9_`); one of one character between
    two of them " y " (`x-y-z`: a word that is just y), each about as rare. The others give
    only "a word starting (or ending) with r": in session ids (base64url, about one `-` or `_`
    in 32 characters) that is in most rows, and the lookup of `Z-R` read a posting entry for
    nearly every session (4 s at ten million). Such terms, and those of one or two characters,
    are walked instead. Python's `isalnum` stands for the database's letters and digits; a
    term it wrongly calls unselective is walked, which finds the same rows."""
    start = None
    for at, char in enumerate([*text, None]):
        if char is not None and char.isalnum():
            start = at if start is None else start
            continue
        if start is not None:
            length, before, after = at - start, start > 0, char is not None
            if length >= TRIGRAM or (length == 2 and (before or after)) or (before and after):
                return True
            start = None
    return False


def _trigram_searchable(filter: SessionFilter) -> bool:
    """Whether some substring condition is one the trigram indexes find cheaply."""
    return any(
        text is not None and _index_finds(name, text)
        for name, text in ((name, getattr(filter, name)) for name in TEXT_CONDITIONS)
    )


def _index_finds(name: str, text: str) -> bool:
    """Whether the search index of condition `name` finds `text` cheaply: any three
    characters in the session id's keys (`read_model.session_query.session_id_holds`: pieces
    of the id as it is, `-` and `_` included), `trigram_selective` in the trigram indexes."""
    return len(text) >= KEY_LENGTH if name == "session_id" else trigram_selective(text)


@dataclass(frozen=True)
class SearchResult:
    """A search's first page, how many sessions match, and whether that count is exact."""

    page: Page
    total: int
    exact: bool
    """False: `total` is a lower bound (at least that many sessions match)."""


class _Order:
    def __init__(self, query: ListQuery) -> None:
        self.key = SORT_KEYS[query.field]
        self.descending = query.descending

    def by(self, key: Any, session_id: Any) -> tuple[Any, Any]:
        return self.columns(key, binary_text(session_id))

    def columns(self, key: Any, tie: Any) -> tuple[Any, Any]:
        """`key` then `tie`, in the query's direction."""
        return ordered(key, tie, self.descending)


async def first_page_and_total(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    *,
    exact: bool = False,
) -> SearchResult:
    """The first page of a search and how many sessions match (see the module's doc)."""
    if exact or store.search_walk is None:
        return await _one_pass(store, conn, query, tenant_id, now)
    # every step in one snapshot: the page and the count agree, and no step pays for a
    # transaction of its own
    async with store.one_read(conn) as reading:
        return await _bounded(store, reading, query, tenant_id, now, store.search_walk)


async def _bounded(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    window: int,
) -> SearchResult:
    """The bounded path (see the module's doc), in the caller's transaction."""
    seen = 0  # matches already known to be there (a lower bound of the total)
    names: list[str] | None = None  # the tenant's user names holding `q`, when all are known
    tenant: int | None = None  # the tenant's size (`Store.tenant_size`), once read
    crowded = False  # q's session id arm alone is expected past the cap
    windowed = False  # ... past the search's cap, in the order of last activity
    read_cap: int | None = None  # the directory's capped read's, when not the search's
    if store.user_name_directory and _directory_searchable(query.filter):
        q = query.filter.q or ""
        if len(q) == KEY_LENGTH and may_be_in_handle(q):
            # three characters are in about one handle of 800 to 6,500: at millions of
            # sessions more than the directory reads whole (a heap page per match, cheaper
            # than the walk up to `keys_cap`), a capped read it would only throw away
            tenant = await store.tenant_size(conn, tenant_id, now)
            read_cap = keys_cap(store.search_cap, tenant)
            expected = handles_holding(q, tenant)
            crowded = expected > read_cap
            # more matches than `WINDOWED_IDS`: the newest of them are read first, in the
            # default order (the keys index's activity column), if no name holds the term
            windowed = query.field == "last_activity_at" and expected > WINDOWED_IDS
        named, seen, names = await _by_directory(
            store,
            conn,
            query,
            tenant_id,
            now,
            crowded=crowded,
            read_cap=read_cap,
            windowed=windowed,
        )
        if named is not None:
            return named
    # the directory read the same matches as the trigram step would, and stopped at the cap
    # (or skipped them, expecting as much)
    trigram = _trigram_searchable(query.filter) and seen <= store.search_cap and not crowded
    if trigram and seen:
        # the directory counted the names' sessions, within the cap: the trigram step would
        # read every one (a heap page each) for the page and an exact total, the walk about
        # `limit * tenant / seen` index entries for the page alone. Past `keys_cap`'s measure
        # the walk is the cheaper (a piece of a name in 1,595 sessions of a tenant of 80,422:
        # 9 ms read, about 2 ms walked), and the total a lower bound, the names' sessions
        if tenant is None:
            tenant = await store.tenant_size(conn, tenant_id, now)
        trigram = seen <= math.isqrt(KEYS_READ * tenant)
    if trigram and await _typed_past_cap(store, conn, query.filter, tenant_id, now):
        trigram = False
    # the names the directory gave (read in this snapshot; none: the walks test the session
    # id only) are compared as they are, not matched again in each entry. The window only
    # tells whether the trigram step should answer instead: where it cannot, one walk goes as
    # far as the page needs (no second statement, no row numbers)
    found = await _walk(
        store, conn, query, tenant_id, now, window if trigram else None, names=names
    )
    if isinstance(found, SearchResult):
        return _at_least(found, seen)
    if trigram and found.rows:
        # the window's share of matches, over the tenant: more than the cap is a waste of the
        # trigram step (it would stop at the cap), so walk on at once
        if tenant is None:
            tenant = await store.tenant_size(conn, tenant_id, now)
        trigram = len(found.rows) * tenant <= store.search_cap * window
    if trigram:
        listed, seen = await _trigram(store, conn, query, tenant_id, now, store.search_cap)
        if listed is not None:
            return listed
    # on from the window's last row: its matches are kept, its rows not read again
    walked = await _walk(store, conn, query, tenant_id, now, None, found, names=names)
    assert isinstance(walked, SearchResult)  # an unbounded walk always ends with an answer
    return _at_least(walked, seen)


async def _typed_past_cap(
    store: Store, conn: AsyncConnection, filter: SessionFilter, tenant_id: str, now: datetime
) -> bool:
    """Whether `q` names a session type of which the tenant has more sessions the filter
    lists than the search's cap (`Store.tenant_size`, from the kept counts): each of them
    matches, so the trigram step, and the window that tells whether to take it, would read
    past the cap and answer nothing. Only when the filter has no condition but `q` and
    session types: another would leave fewer matches than counted. At ten million sessions,
    `OBI` (in "mobile"): 11 ms with the window and the walk on, 6 ms walked at once."""
    conditions = filter.model_dump(exclude_none=True).keys()
    if filter.q is None or not conditions <= {"q", "session_type"}:
        return False
    listed = set(filter.session_type or LISTED)
    types = tuple(SessionType(t) for t in types_containing(filter.q) if t in listed)
    return bool(types) and await store.tenant_size(conn, tenant_id, now, types) > store.search_cap


def keys_cap(cap: int, tenant: int) -> int:
    """The most matches of a term's session id arm the directory reads whole in a tenant of
    `tenant` active sessions, rather than walk: `cap`, or more in a large tenant.

    Read through the session id keys, each match costs a heap page; the walk reads about
    `limit / share of matching rows` index entries, `51 * tenant / matches`, before its page
    is full. Reading is the cheaper while `matches ** 2 < KEYS_READ * tenant` (`KEYS_READ`:
    measured): in a tenant of four million sessions up to 6,900 matches, so a piece of three
    in 5,000 of its ids is read (17-21 ms), not walked (29-38 ms)."""
    return max(cap, math.isqrt(KEYS_READ * tenant))


def _at_least(found: SearchResult, seen: int) -> SearchResult:
    """`found`, its lower-bound total raised to the `seen` matches an earlier step counted."""
    if found.exact:
        return found
    return SearchResult(found.page, max(found.total, seen), exact=False)


@dataclass(frozen=True)
class _Window:
    """A walk's window that was full before the page: its matching rows, in order, and the
    sort position of its last row (where a walk on starts)."""

    rows: list[dict[str, Any]]
    last: tuple[Any, str]


async def _walk(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    window: int | None,
    resumed: _Window | None = None,
    *,
    names: list[str] | None = None,
) -> SearchResult | _Window:
    """The first `limit + 1` matches in the sort order, from the first `window` rows of the
    tenant's sort order (all of them when `window` is None), after `resumed`'s last row with
    its matches first when given; when the window was full and held fewer matches than the
    page, those matches and where it stopped. `names`: every user name of the tenant that
    holds `q`, when the directory gave them (`_by_directory`), compared as they are instead of
    matching `q` in each entry's name (an empty list: only `q`'s other arms are tested).

    One statement: the walk reads the sort index (index-only), and only the page's rows are
    joined to the table for their columns."""
    kept = resumed.rows if resumed is not None else []
    # as many as the page needs even if every kept row is met again (listed once); a window's
    # matches, and its last row
    wanted = query.limit + 1 if window is None else query.limit + 2 - len(kept)
    q = query.filter.q
    shape = None if q is None else q_shape(q)
    arm = _names_arm(names)
    rest, values = _rest(query.filter)
    statement = _walk_statement(query.sort, window, wanted, arm, resumed is not None, rest, shape)
    values.update(w_tenant=tenant_id, w_now=now)
    if arm == "listed":
        values["w_names"] = names
    if q is not None:
        values["w_pattern"] = like_pattern(q)
    if resumed is not None:
        values.update(w_after=resumed.last[0], w_after_id=resumed.last[1])
    async with store.walk(conn):
        rows = row_dicts(await store.run(conn, statement, values))
    # the page's columns and `policy_outdated`, without the walk's own (`w_key`, `w_tie`,
    # `w_m`, `w_n`: sort key, tie, whether it matched, row number)
    listed = _unwalked([r for r in rows if r["w_m"]])
    # the window and the walk on are two statements of one snapshot (`Store.one_read`); were
    # they not, a row the registry moved past the mark in between (an ascending sort) would be
    # met twice: it is listed once, where first met
    known = {r["session_id"] for r in kept}
    matched = (kept + [r for r in listed if r["session_id"] not in known])[: query.limit + 1]
    last = next((r for r in rows if window is not None and r["w_n"] == window), None)
    if len(matched) > query.limit:
        return SearchResult(as_page(query, matched), len(matched), exact=False)
    if last is not None:
        return _Window(matched, (last["w_key"], str(last["w_tie"])))
    # every active row of the tenant was walked: these are all the matches
    return SearchResult(as_page(query, matched), len(matched), exact=True)


NamesArm: TypeAlias = Literal["matched", "listed", "none"]
"""How a walk tests the user name against `q` (`_names_arm`)."""


def _names_arm(names: list[str] | None) -> NamesArm:
    """`matched`: `ILIKE` on each entry's name (the names holding `q` are not known);
    `listed`: the name is one of `names` (the directory's, all of those holding `q`), an
    equality the database tests by hashing instead of lowering each name and scanning it for
    `q` (about five times cheaper an entry); `none`: no name holds `q`."""
    if names is None:
        return "matched"
    return "listed" if names else "none"


@functools.lru_cache(maxsize=256)
def _walk_statement(
    sort: Sort,
    window: int | None,
    wanted: int,
    names: NamesArm,
    resumed: bool,
    rest: FilterShape,
    shape: QShape | None,
) -> Any:
    """`_walk`'s statement for a shape of walk (its order, window, rows wanted, how it tests
    the user name, whether it resumes, the shape of the filter's other conditions, what `q`
    is built from: `q_shape`), built once: the tenant, the moment, `q`'s pattern, the names,
    the position walked on from and the other conditions' values are bound at execution.
    Building and keying it took about half a millisecond of every walk."""
    order = _Order(ListQuery(SessionFilter(), sort))
    tenant = bindparam("w_tenant", type_=String())
    where = active_clause(tenant, bindparam("w_now", type_=DateTime(timezone=True)))
    if resumed:  # strictly after the window's last row (keys of listed rows are set)
        after = bindparam("w_after", type_=order.key.type), bindparam("w_after_id", type_=String())
        where = and_(where, after_clause(order.key, *after, order.descending))
    matched = conditions_clause(rest, walked=True)
    if shape is not None:
        pattern = bindparam("w_pattern", type_=String())
        user_name: bool | ColumnElement[bool] = names == "matched"
        if names == "listed":
            user_name = _s.user_name.collate("C") == any_(
                bindparam("w_names", type_=ARRAY(String()))
            )
        matched = and_(q_clause(shape, pattern, walked=True, names=user_name), matched)
    if window is None:
        head = _walked_to_the_end(order, where, matched, wanted)
    else:
        head = _walked_window(order, where, matched, window, wanted)
    at = (_s.tenant_id == tenant) & (_s.session_id == head.c.session_id)
    return (
        select(
            *page_columns(),
            head.c.sort_key.label("w_key"),
            head.c.tie.label("w_tie"),
            head.c.m.label("w_m"),
            head.c.n.label("w_n"),
        )
        .join_from(head, sessions, at)
        .order_by(*order.columns(head.c.sort_key, head.c.tie))
    )


def _walk_keys(order: _Order) -> list[ColumnElement[Any]]:
    """What a walk reads of each index entry to place it: the id, the sort key, the tie."""
    return [
        _s.session_id,
        order.key.label("sort_key"),
        binary_text(_s.session_id).label("tie"),
    ]


def _walked_window(
    order: _Order,
    where: ColumnElement[bool],
    matched: ColumnElement[bool],
    window: int,
    wanted: int,
) -> Any:
    """The first `wanted` matches of the first `window` rows of `where` in the sort order,
    and that window's last row (`n = window`) when it was full: each row's match (`m`) and
    row number (`n`) are columns, so the walk stops at the window whatever matches."""
    walked = (
        select(
            *_walk_keys(order),
            matched.label("m"),
            func.row_number().over(order_by=order.by(order.key, _s.session_id)).label("n"),
        )
        .where(where)
        .order_by(*order.by(order.key, _s.session_id))
    )
    rows_in_order = walked.limit(window).subquery()
    # ordered as the walk is (the planner sees the subquery's order and adds no sort, so the
    # walk stops at the limit instead of reading the whole tenant to sort it)
    tail = rows_in_order.c
    return (
        select(tail.session_id, tail.sort_key, tail.tie, tail.m, tail.n)
        .where(tail.m | (tail.n == window))  # the window's last row says it was full
        .order_by(*order.columns(tail.sort_key, tail.tie))
        .limit(wanted)  # the matches wanted, and the window's last row
        .subquery()
    )


def _walked_to_the_end(
    order: _Order, where: ColumnElement[bool], matched: ColumnElement[bool], wanted: int
) -> Any:
    """The first `wanted` matches of `where` in the sort order, however far they are: the
    filter is the walk's own condition, tested on each index entry as it is read (no row
    numbers, no match column: a rare term walks tens of thousands of entries)."""
    return (
        select(
            *_walk_keys(order),
            true().label("m"),
            literal(None).label("n"),
        )
        .where(where, matched)
        .order_by(*order.by(order.key, _s.session_id))
        .limit(wanted)
        .subquery()
    )


async def _trigram(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    cap: int,
) -> tuple[SearchResult | None, int]:
    """Every match through the trigram indexes (bitmaps, no sort index), when there are at
    most `cap`: sorted, the page is their first; else None and how many were seen
    (`cap + 1`). One statement: the page's rows, each with how many were read (`total`)."""
    shape, values = filter_parameters(query.filter)
    statement = _trigram_statement(query.sort, query.limit, shape, cap)
    values.update(t_tenant=tenant_id, t_now=now)
    async with store.search(conn, capped=True):
        rows = row_dicts(await store.run(conn, statement, values))
    return _capped_result(query, rows, cap)


@functools.lru_cache(maxsize=256)
def _trigram_statement(sort: Sort, limit: int, shape: FilterShape, cap: int) -> Any:
    """`_trigram`'s statement for a shape of query (its order, its page, the filter's shape,
    the cap), built once: the tenant, the moment and the filter's values are bound at
    execution (`t_tenant`, `t_now`, `filter_parameters`)."""
    tenant = bindparam("t_tenant", type_=String())
    now = bindparam("t_now", type_=DateTime(timezone=True))
    query = ListQuery(SessionFilter(), sort, limit)
    return _capped_statement(query, tenant, filter_clause(shape, tenant, now), cap)


def _capped_statement(
    query: ListQuery, tenant: TenantRef, matches: ColumnElement[bool], cap: int
) -> Any:
    """The page's rows (the first `limit + 1`, in the query's order) of at most `cap + 1`
    rows of `matches`, each with how many were read (`total`); one statement."""
    order = _Order(query)
    capped = (
        select(_s.session_id, order.key.label("sort_key")).where(matches).limit(cap + 1).subquery()
    )
    top = (
        select(capped.c.session_id, capped.c.sort_key, func.count().over().label("total"))
        .order_by(*order.by(capped.c.sort_key, capped.c.session_id))
        .limit(query.limit + 1)
        .subquery()
    )
    return rows_of(top, tenant, query.descending)


@functools.lru_cache(maxsize=256)
def _named_statement(
    sort: Sort, limit: int, cap: int, in_handle: bool, rest: FilterShape, named: bool = True
) -> Any:
    """The directory's capped read (`_by_directory`: the sessions of the names holding `q`,
    if any, and, when `q` may be in a handle, those whose id holds it) for a shape of query,
    built once: the tenant, the moment, the names, the id pattern and the values of the
    filter's other conditions are bound at execution.

    Without names (`named` false: three characters of a session id, say) the names' arm is
    left out rather than bound empty: an empty arm still made the table's filter test the
    session id a second time on every candidate the trigram index gave (1,275 for a piece of
    three at a million sessions: 7.5 → 6.3 ms)."""
    query = ListQuery(SessionFilter(), sort, limit)
    tenant = bindparam("d_tenant", type_=String())
    now = bindparam("d_now", type_=DateTime(timezone=True))
    arms = []
    if named:
        names = bindparam("d_names", type_=ARRAY(String()))
        arms.append(and_(_s.tenant_id == tenant, _s.user_name.collate("C") == any_(names)))
    if in_handle:
        text, pattern = (bindparam(n, type_=String()) for n in ("d_text", "d_pattern"))
        arms.append(by_session_id(tenant, text, pattern))
    arm = or_(*arms) if len(arms) > 1 else arms[0]
    return _capped_statement(query, tenant, _directory_matches(rest, now, arm), cap)


def _capped_result(
    query: ListQuery, rows: list[dict[str, Any]], cap: int
) -> tuple[SearchResult | None, int]:
    """The page of `_capped_statement`'s rows, with its exact total, when there were at most
    `cap`."""
    total = int(rows[0]["w_total"]) if rows else 0
    if total > cap:
        return None, total
    return SearchResult(as_page(query, _unwalked(rows)), total, exact=True), total


def _unwalked(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The page's rows without what only the search read (`w_` columns)."""
    return [{k: v for k, v in r.items() if not k.startswith("w_")} for r in rows]


def _directory_searchable(filter: SessionFilter) -> bool:
    """Whether the directory of user names can answer the search: `q` is its only text
    condition, names no session type (that arm is every session of the type: the walk's
    case), and its session id arm, if any, can be looked up (`_index_finds`; split terms
    too: in the directory's few names pg_trgm's split costs little)."""
    q = filter.q
    if q is None or any(getattr(filter, n) is not None for n in TEXT_CONDITIONS if n != "q"):
        return False
    if types_containing(q):
        return False
    return not may_be_in_handle(q) or _index_finds("session_id", q)


def _mergeable(query: ListQuery, q: str) -> bool:
    """Whether `_merged` can answer: an order the B-trees keep per name, and a session id arm
    that is empty or small."""
    if query.field not in MERGED_SORTS:
        return False
    return len(q) >= MERGED_HANDLE_FRAGMENT or not may_be_in_handle(q)


def _directory_matches(
    rest: FilterShape, now: Moment, arm: ColumnElement[bool]
) -> ColumnElement[bool]:
    """`arm` (what `q` matches, resolved, with the tenant) and the rest of the filter (its
    shape: `_rest`), on listed active rows.

    The same rows as `filter_clause`: `q` names no session type here
    (`_directory_searchable`), and a session's name holds `q` exactly when it is one of the
    directory's names that do, the directory holding every listed session's name."""
    return and_(arm, listed_condition(), active_condition(now), conditions_clause(rest))


def _rest(filter: SessionFilter) -> tuple[FilterShape, dict[str, Any]]:
    """The filter's conditions besides `q`: their shape, part of the key of a statement built
    once (`_walk_statement`, `_named_statement`, `_merged_statement`, ...), and their values,
    bound at its execution (`filter_parameters`)."""
    return filter_parameters(filter.model_copy(update={"q": None}))


def _only_q(filter: SessionFilter) -> bool:
    """Whether `q` is the filter's one condition."""
    return filter.model_dump(exclude_none=True).keys() == {"q"}


def _name_holds(selective: bool, pattern: ColumnElement[str]) -> ColumnElement[bool]:
    """Whether a directory name holds the LIKE `pattern` (`like_pattern(q)`), as `contains`
    says: through the trigram index for a term it looks up cheaply (`selective`:
    `trigram_selective`); otherwise (one or two characters: every name of the tenant is read)
    `LIKE` on the name lowered once (revision 0701), which is what `ILIKE` compares, without
    lowering each name again."""
    d = listed_user_names.c
    if selective:
        return d.user_name.ilike(pattern, escape="\\")
    return d.user_name_folded.like(func.lower(pattern), escape="\\")


@functools.lru_cache(maxsize=2)
def _lookup_statement(selective: bool) -> Any:
    """The directory's names holding `q` (at most `MERGED_NAMES + 1`), built once per way of
    looking them up (`_name_holds`): the tenant and the pattern are bound at execution."""
    d = listed_user_names.c
    holds = _name_holds(selective, bindparam("l_pattern", type_=String()))
    tenant = bindparam("l_tenant", type_=String())
    return select(d.user_name).where(d.tenant_id == tenant, holds).limit(MERGED_NAMES + 1)


def _sessions_of(
    rest: FilterShape, tenant: TenantRef, names: ColumnElement[Any], now: Moment, cap: int
) -> Any:
    """How many active listed sessions matching the filter besides `q` have one of `names`
    (an array), counting at most `cap + 1`: index-only on `ix_sessions_open_user_name`."""
    of_names = (_s.tenant_id == tenant) & (_s.user_name.collate("C") == any_(names))
    some = (
        select(_s.session_id)
        .where(_directory_matches(rest, now, of_names))
        .limit(cap + 1)
        .subquery()
    )
    return select(func.count()).select_from(some)


@functools.lru_cache(maxsize=256)
def _counted_statement(rest: FilterShape, cap: int) -> Any:
    """`_sessions_of` for a shape of query, built once: the tenant, the moment and the names
    are bound at execution (`c_tenant`, `c_now`, `c_names`), with the other conditions'
    values."""
    tenant = bindparam("c_tenant", type_=String())
    now = bindparam("c_now", type_=DateTime(timezone=True))
    return _sessions_of(rest, tenant, bindparam("c_names", type_=ARRAY(String())), now, cap)


@functools.lru_cache(maxsize=256)
def _ids_statement(rest: FilterShape, cap: int) -> Any:
    """The sessions whose id holds `q` (at most `cap + 1`) and that match the filter's other
    conditions: their ids, user names and last activity, what the merge sorts its session id
    arm by (`IdArm`), read from the rows this statement rechecks anyway. Built once per
    shape: the tenant, the moment and the pattern are bound at execution (`i_tenant`,
    `i_now`, `i_text`, `i_pattern`), with the other conditions' values."""
    tenant = bindparam("i_tenant", type_=String())
    now = bindparam("i_now", type_=DateTime(timezone=True))
    text, pattern = (bindparam(n, type_=String()) for n in ("i_text", "i_pattern"))
    by_id = by_session_id(tenant, text, pattern)
    found = select(_s.session_id, _s.user_name, _s.last_activity_at)
    return found.where(_directory_matches(rest, now, by_id)).limit(cap + 1)


@dataclass(frozen=True)
class IdArm:
    """The merge's session id arm: the sessions whose id holds `q`, but those of the names
    merged (a listed session has one name: the names' arm has them, or ranks them after its
    page), each with its key in the merge's order. Read by the ids step, in the same snapshot
    as the merge, so the merge reads none of these rows again (at ten million sessions,
    `park` in 165 ids: 825 buffers and 1.6 ms of a 3.4 ms merge)."""

    ids: list[str]
    keys: list[Any]

    @classmethod
    def of(cls, rows: Any, names: list[str], field: str) -> IdArm:
        merged = set(names)
        kept = [row for row in rows if row.user_name not in merged]
        return cls([row.session_id for row in kept], [getattr(row, field) for row in kept])


async def _by_directory(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    *,
    crowded: bool = False,
    read_cap: int | None = None,
    windowed: bool = False,
) -> tuple[SearchResult | None, int, list[str] | None]:
    """The answer through the directory of user names, when `q` is in few names.

    The names holding `q` come from the directory's trigram index (under a search step's
    planner switches: with the server's own, the planner read all of the tenant's names
    instead at ten million sessions, 2 ms against 0.4). Up to `MERGED_NAMES` of them, in an
    order a B-tree keeps per name (`MERGED_SORTS`), each name's first `limit + 1` sessions
    are read in order from that B-tree and merged with the session id arm's (`_merged`); up
    to `DIRECTORY_NAMES` names, their sessions are counted too (index-only, up to the cap),
    so the total is exact within the cap. In another order, up to `DIRECTORY_NAMES` names,
    their sessions (the user name B-tree) and, when `q` may be part of a session id, the
    session id keys index's are read whole, at most `search_cap`: sorted, the page is
    their first and the total exact. None otherwise, the walk's case, with how many matches
    were seen (`search_cap + 1` when the cap stopped the read: the trigram step would stop
    there too); and the tenant's user names holding `q` when the lookup read all of them (at
    most `MERGED_NAMES`; the directory holds every listed session's name), else None.
    `crowded`: `q`'s session id arm is expected past the cap (`handles_holding`), so only the
    names are looked up. `read_cap`: the most matches read whole, when not `search_cap`
    (`keys_cap`, for three characters that may be in a handle). `windowed`: the session id
    arm is expected past `search_cap` in the order of last activity, so when no name holds
    `q` its newest matches are read first (`_by_activity`)."""
    q = query.filter.q or ""
    cap = store.search_cap
    selective = trigram_selective(q)
    rest, filtered = _rest(query.filter)
    pattern = like_pattern(q)
    listed: SearchResult | None = None
    seen = 0
    ids: list[Any] | None = None  # the session id arm's rows
    # a term the trigram index cannot look up reads the tenant's lowered names in order
    # (index-only), as a walk reads, and the walk or merge that follows shares its switches
    async with store.search(conn, capped=True, keyed=True) if selective else store.walk(conn):
        found = await store.run(
            conn, _lookup_statement(selective), {"l_tenant": tenant_id, "l_pattern": pattern}
        )
        names = sorted(str(n) for n in found.scalars())
    every = names if len(names) <= MERGED_NAMES else None  # the lookup read them all
    if windowed and not names:
        recent, seen = await _by_activity(store, conn, query, tenant_id, now, read_cap or cap)
        if recent is not None:
            return recent, seen, every
    if crowded:
        return None, seen, every
    merging = len(names) <= MERGED_NAMES and _mergeable(query, q)
    counted = merging and 0 < len(names) <= DIRECTORY_NAMES
    if len(names) > DIRECTORY_NAMES and not merging and _only_q(query.filter):
        # the walk's turn: past the cap, the names alone leave the trigram step nothing to
        # answer, and the walk needs no window to tell (an index-only count, up to the cap)
        counting = _counted_statement(rest, cap)
        async with store.walk(conn, keyed=not rest):
            values = {**filtered, "c_tenant": tenant_id, "c_now": now, "c_names": names}
            # matches all (their names hold `q`): a lower bound of the total either way
            seen = min(int((await store.run(conn, counting, values)).scalar_one()), cap + 1)
    # no statement for what can match nothing: a term in no name that no handle can hold
    in_handle = may_be_in_handle(q)
    if len(names) <= DIRECTORY_NAMES and not counted:
        # read whole; merged and counted instead where the order allows, which reads no
        # session's row but the page's (a full name at ten million sessions: 1,400 rows, one
        # heap page each, against 51 index entries and an index-only count)
        rows: list[dict[str, Any]] = []
        whole = cap if read_cap is None else read_cap
        if names or in_handle:
            named = bool(names)
            statement = _named_statement(query.sort, query.limit, whole, in_handle, rest, named)
            read: dict[str, Any] = {**filtered, "d_tenant": tenant_id, "d_now": now}
            if named:
                read["d_names"] = names
            if in_handle:
                read["d_text"], read["d_pattern"] = q, pattern
            async with store.search(conn, capped=True):
                rows = row_dicts(await store.run(conn, statement, read))
        listed, seen = _capped_result(query, rows, whole)
    if listed is None and merging:
        # the merge's turn: the session id arm, read whole
        ids = []
        if in_handle:
            capped = _ids_statement(rest, cap)
            values = {**filtered, "i_tenant": tenant_id, "i_now": now}
            values.update(i_text=q, i_pattern=pattern)
            # planned once, as the lookup, when `q` is the only condition: the term's keys
            # find the rows whatever it is (another condition's range could want its index)
            async with store.search(conn, capped=True, keyed=not rest):
                ids = list((await store.run(conn, capped, values)).all())
    if listed is not None:
        return listed, seen, every
    if ids is None or len(ids) > cap:
        return None, seen, every
    arm = IdArm.of(ids, names, query.field)
    merged = await _merged(
        store, conn, query, tenant_id, now, names, arm, (rest, filtered), counted=counted
    )
    return merged, seen, every


async def _by_activity(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    cap: int,
) -> tuple[SearchResult | None, int]:
    """The first page of the sessions whose id holds `q` (and that match the filter's other
    conditions), in the order of last activity, read from the tenant's newest (or, ascending,
    oldest) buckets of last activity first (`ACTIVITY_WINDOWS`): each statement reads the
    matches of a window of buckets through the keys index, which intersects the term's keys
    with the window's activity keys, so it costs a heap page per match in the window, not in
    the tenant. Every session outside the window is later (earlier) than every one in it, so
    once the window holds more matches than the page, the page is its first. The total is
    how many the window held: exact when the window spans the tenant's every bucket, else a
    lower bound. None when the widest window holds fewer than the page (or more than `cap`
    matches); with how many matches were seen."""
    q = query.filter.q or ""
    rest, filtered = _rest(query.filter)
    # the edges are read in the sort order (index scans: under a search step's switches the
    # planner read the whole tenant for them, 2.4 s at ten million sessions), the windows as
    # bitmaps of the keys index
    async with store.walk(conn, keyed=True):
        edges = await store.run(conn, _edges_statement(), {"e_tenant": tenant_id, "e_now": now})
    newest, oldest = list(edges.one())
    if newest is None:  # no active session
        return SearchResult(as_page(query, []), 0, exact=True), 0
    # planned once when `q` is the only condition: the keys index finds the window's
    # matches whatever the term and the window (both computed at the scan's start)
    async with store.search(conn, capped=True, keyed=not rest):
        statement = _window_statement(query.sort, query.limit, rest, cap)
        values = {**filtered, "a_tenant": tenant_id, "a_now": now, "a_text": q}
        values["a_pattern"] = like_pattern(q)
        seen = 0
        for width in ACTIVITY_WINDOWS:
            first, last = (
                (newest - width + 1, newest) if query.descending else (oldest, oldest + width - 1)
            )
            whole = first <= oldest and last >= newest
            values.update(a_first=first, a_last=last)
            rows = row_dicts(await store.run(conn, statement, values))
            listed, seen = _capped_result(query, rows, cap)
            if listed is None:  # more than the cap in the window: read no more of it
                return None, seen
            if whole or len(rows) > query.limit:
                return SearchResult(listed.page, seen, exact=whole), seen
    return None, seen


@functools.lru_cache(maxsize=1)
def _edges_statement() -> Any:
    """The buckets of the tenant's newest and oldest last activity among its active listed
    sessions (None for a tenant with none): two index-only probes of the last activity's
    B-tree, the tenant and the moment bound at execution (`e_tenant`, `e_now`)."""
    tenant = bindparam("e_tenant", type_=String())
    active = active_clause(tenant, bindparam("e_now", type_=DateTime(timezone=True)))
    moment = _s.last_activity_at
    return select(activity_bucket(func.max(moment)), activity_bucket(func.min(moment))).where(
        active
    )


@functools.lru_cache(maxsize=256)
def _window_statement(sort: Sort, limit: int, rest: FilterShape, cap: int) -> Any:
    """`_by_activity`'s statement for a shape of query (its order, its page, the shape of the
    filter's other conditions, the cap), built once: the tenant, the moment, the term, its
    pattern, the window's first and last buckets and the other conditions' values are bound
    at execution (`a_tenant`, `a_now`, `a_text`, `a_pattern`, `a_first`, `a_last`)."""
    query = ListQuery(SessionFilter(), sort, limit)
    tenant = bindparam("a_tenant", type_=String())
    now = bindparam("a_now", type_=DateTime(timezone=True))
    text, pattern = (bindparam(n, type_=String()) for n in ("a_text", "a_pattern"))
    first, last = (bindparam(n, type_=BigInteger()) for n in ("a_first", "a_last"))
    arm = and_(by_session_id(tenant, text, pattern), in_activity_window(tenant, first, last))
    return _capped_statement(query, tenant, _directory_matches(rest, now, arm), cap)


async def _merged(
    store: Store,
    conn: AsyncConnection,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    names: list[str],
    ids: IdArm,
    rest: tuple[FilterShape, dict[str, Any]],
    *,
    counted: bool = False,
) -> SearchResult:
    """The first page of `q`'s matches in an order the user name B-trees keep per name: each
    name's first `limit + 1` sessions in that order (`ix_sessions_open_user_name` for the
    user name, `ix_sessions_open_user_name_activity` for the last activity), merged with the
    sessions whose id holds `q` (`ids`, every one, with its key). The total is exact when no
    name had more than the page; else, `counted`, the names' sessions counted up to the cap
    (index-only) and the ids', exact within the cap; else the matches read (a lower bound).
    `rest`: the filter's other conditions (`_rest`), as the caller has them."""
    cap = store.search_cap if counted else None
    shape, filtered = rest
    statement = _merged_statement(query.sort, query.limit, bool(ids.ids), shape, cap)
    values = {
        **filtered,
        "m_tenant": tenant_id,
        "m_now": now,
        "m_names": names,
        "m_ids": ids.ids,
        "m_id_keys": ids.keys,
        "m_firsts": _firsts(query.limit, len(names)),
    }
    # planned once per connection where nothing but keys and the moment are bound: the
    # other conditions' ranges could want another index than the plan built without them
    async with store.walk(conn, keyed=not shape):
        rows = row_dicts(await store.run(conn, statement, values))
    page = as_page(query, _unwalked(rows))
    total = int(rows[0]["w_total"]) if rows else 0
    if len(rows) <= query.limit:  # no name had more sessions than the page: all were read
        return SearchResult(page, total, exact=True)
    if cap is None:
        return SearchResult(page, total, exact=False)
    named, by_id = int(rows[0]["w_named"]), int(rows[0]["w_by_id"])
    return SearchResult(page, max(total, named + by_id), exact=named <= cap)


def _firsts(limit: int, names: int) -> int:
    """How many first sessions of each of `names` names the merge reads to place its mark:
    twice the page's share, so that the mark is there unless many names have few sessions."""
    return min(limit + 1, max(1, -(-2 * (limit + 1) // max(names, 1))))


@functools.lru_cache(maxsize=256)
def _merged_statement(
    sort: Sort, limit: int, with_ids: bool, rest: FilterShape, counted_to: int | None = None
) -> Any:
    """`_merged`'s statement for a shape of query (its order, its page, whether there is a
    session id arm, the shape of the filter's other conditions, the cap the names' sessions
    are counted to, if they are), built once: what changes from one search to the next (the
    tenant, the moment, the names, the ids, the other conditions' values) is bound at
    execution. Building it took about
    a millisecond, every search."""
    query = ListQuery(SessionFilter(), sort, limit)
    order = _Order(query)
    tenant = bindparam("m_tenant", type_=String())
    now = bindparam("m_now", type_=DateTime(timezone=True))
    chosen = bindparam("m_names", type_=ARRAY(String()))
    name = func.unnest(chosen).table_valued("name").render_derived()
    of_name = _directory_matches(
        rest, now, (_s.tenant_id == tenant) & (_s.user_name.collate("C") == name.c.name)
    )

    def first_of_name(where: ColumnElement[bool], limit: Any) -> Any:
        """A name's first `limit` sessions of `where` in the order (the lateral per name)."""
        return (
            select(_s.session_id, order.key.label("sort_key"))
            .where(where)
            .order_by(*order.by(order.key, _s.session_id))
            .limit(limit)
            .lateral()
        )

    firsts = None
    if query.field == "last_activity_at":
        # a few of each name's first sessions (`m_firsts` each) give a mark: the page's rows
        # and the one after it lie at or before the (limit + 1)-th of them in the order (that
        # many matches do), so each name is read only down to it, not `limit + 1` deep (54
        # names of 7,400 sessions: 2,754 entries read before, about 210 now). With fewer of
        # them than that, no mark: as deep as the page, as before
        head = first_of_name(of_name, bindparam("m_firsts", type_=Integer()))
        firsts = (
            select(head.c.session_id, head.c.sort_key)
            .select_from(name)
            .join(head, true())
            .cte("firsts")
            .prefix_with("MATERIALIZED")
        )
        mark = (
            select(firsts.c.sort_key, binary_text(firsts.c.session_id).label("tie"))
            .order_by(*order.by(firsts.c.sort_key, firsts.c.session_id))
            .offset(limit)
            .limit(1)
            .subquery()
        )
        end: ColumnElement[Any] = literal_column(
            "'-infinity'" if query.descending else "'infinity'"
        )
        bound = tuple_(
            func.coalesce(select(mark.c.sort_key).scalar_subquery(), cast(end, order.key.type)),
            func.coalesce(select(mark.c.tie).scalar_subquery(), literal("", String())),
        )
        row = tuple_(order.key, binary_text(_s.session_id))
        of_name = and_(of_name, row >= bound if query.descending else row <= bound)
    per_name = first_of_name(of_name, limit + 1)
    arms = [
        select(per_name.c.session_id, per_name.c.sort_key, true().label("by_name"))
        .select_from(name)
        .join(per_name, true())
    ]
    if with_ids:
        # the sessions of other names, with their keys (`IdArm`): disjoint from the first
        # arm's, so appended, not deduplicated
        key_type = _s.user_name.type if query.field == "user_name" else _s.last_activity_at.type
        by_id = (
            func.unnest(
                bindparam("m_ids", type_=ARRAY(String())),
                bindparam("m_id_keys", type_=ARRAY(key_type)),
            )
            .table_valued("session_id", "sort_key")
            .render_derived()
        )
        key = by_id.c.sort_key
        arms.append(
            select(
                by_id.c.session_id,
                (binary_text(key) if query.field == "user_name" else key).label("sort_key"),
                false().label("by_name"),
            )
        )
    # read once, then both sorted for the page and counted (the total)
    merged = union_all(*arms).cte("merged").prefix_with("MATERIALIZED")
    read: ColumnElement[int] = select(func.count()).select_from(merged).scalar_subquery()
    if firsts is not None:  # the first sessions read past the mark are matches too
        read = func.greatest(read, select(func.count()).select_from(firsts).scalar_subquery())
    counts = [read.label("total")]
    if counted_to is not None:  # every session of the names, up to the cap
        named = _sessions_of(rest, tenant, chosen, now, counted_to)
        by_id_read = select(func.count()).select_from(merged).where(~merged.c.by_name)
        counts += [
            named.scalar_subquery().label("named"),
            by_id_read.scalar_subquery().label("by_id"),
        ]
    top = (
        select(merged.c.session_id, merged.c.sort_key, *counts)
        .order_by(*order.by(merged.c.sort_key, merged.c.session_id))
        .limit(limit + 1)
        .subquery()
    )
    return rows_of(top, tenant, query.descending)


async def _one_pass(
    store: Store, conn: AsyncConnection, query: ListQuery, tenant_id: str, now: datetime
) -> SearchResult:
    """The first page and the exact total from one pass over every match."""
    shape, values = filter_parameters(query.filter)
    statement = _one_pass_statement(query.sort, query.limit, shape)
    values.update(o_tenant=tenant_id, o_now=now)
    async with store.search(conn, capped=False):
        rows = row_dicts(await store.run(conn, statement, values))
    total = int(rows[0]["total"]) if rows else 0
    return SearchResult(as_page(query, rows), total, exact=True)


@functools.lru_cache(maxsize=256)
def _one_pass_statement(sort: Sort, limit: int, shape: FilterShape) -> Any:
    """`_one_pass`'s statement for a shape of query (its order, its page, the filter's
    shape), built once: the tenant, the moment and the filter's values are bound at
    execution (`o_tenant`, `o_now`, `filter_parameters`)."""
    order = _Order(ListQuery(SessionFilter(), sort, limit))
    tenant = bindparam("o_tenant", type_=String())
    now = bindparam("o_now", type_=DateTime(timezone=True))
    matches = (
        select(
            _s.tenant_id,
            _s.session_id,
            order.key.label("sort_key"),
            func.count().over().label("total"),
        )
        .where(filter_clause(shape, tenant, now))
        .order_by(*order.by(order.key, _s.session_id))
        .limit(limit + 1)
        .subquery()
    )
    return (
        select(*page_columns(), matches.c.total)
        .join_from(
            sessions,
            matches,
            and_(_s.tenant_id == matches.c.tenant_id, _s.session_id == matches.c.session_id),
        )
        .order_by(*order.by(matches.c.sort_key, matches.c.session_id))
    )
