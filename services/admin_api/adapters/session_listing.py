"""Pages, totals and single sessions of the Active User Sessions list (keyset, no OFFSET)."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    DateTime,
    Row,
    String,
    and_,
    bindparam,
    func,
    literal,
    select,
    tuple_,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from admin_api.domain.listing import ListQuery, Position, Sort, SortField, SortKey
from read_model.active import Moment, TenantRef, active_condition, listed_condition
from read_model.session_query import (
    FilterShape,
    binary_text,
    filter_clause,
    filter_parameters,
    policy_outdated,
)
from read_model.store import Store, row_dicts
from read_model.tables import session_history, sessions
from session_contracts.models import SessionFilter, as_utc

_s = sessions.c

SORT_KEYS: dict[SortField, ColumnElement[Any]] = {
    "user_name": binary_text(_s.user_name),
    "session_type": binary_text(_s.session_type),
    "session_id": binary_text(_s.session_id),
    "ip_address": _s.ip_packed,
    "created_at": _s.created_at,
    "last_activity_at": _s.last_activity_at,
    "expires_at": _s.expires_at,
    "device": binary_text(func.coalesce(_s.device, "")),
}
"""The expression each sort field orders by; the PostgreSQL listing indexes match these."""

TIE_BREAK = binary_text(_s.session_id)
COLUMNS = (
    _s.session_id,
    _s.user_id,
    _s.user_name,
    _s.session_type,
    _s.ip_address,
    _s.ip_packed,
    _s.created_at,
    _s.last_activity_at,
    _s.expires_at,
    _s.device,
    _s.user_agent,
    _s.max_session_seconds,
    _s.idle_timeout_seconds,
)

_TOTAL = "w_total"
TENANT = bindparam("l_tenant", type_=String())
NOW = bindparam("l_now", type_=DateTime(timezone=True))
"""The parameters of a page statement built once (`_page_of_shape`): bound at execution."""


def sort_value(row: Mapping[str, Any], field: SortField) -> SortKey:
    """The value a row is ordered by, as the cursor carries it."""
    if field == "ip_address":
        return bytes(row["ip_packed"] or b"")
    if field == "device":
        return str(row["device"] or "")
    value = row[field]
    return as_utc(value) if isinstance(value, datetime) else str(value)


@dataclass(frozen=True)
class Page:
    """One page of rows and the position after its last row (None on the last page)."""

    rows: list[Mapping[str, Any]]
    after: Position | None


def page_columns() -> tuple[Any, ...]:
    """What a page row carries: `COLUMNS` and `policy_outdated`."""
    return (*COLUMNS, policy_outdated().label("policy_outdated"))


def after_clause(
    key: ColumnElement[Any], value: Any, session_id: Any, descending: bool
) -> ColumnElement[bool]:
    """Rows strictly after the position (`value` of the sort `key`, then `session_id`) in the
    order's direction: where a page cursor, or a search's walk on, starts. Either is a value,
    or a parameter bound at execution."""
    mark = tuple_(_as_value(value, key.type), _as_value(session_id, String()))
    row_key = tuple_(key, TIE_BREAK)
    return row_key < mark if descending else row_key > mark


def _as_value(value: Any, type_: Any) -> Any:
    return value if isinstance(value, BindParameter) else literal(value, type_)


def _page_statement(
    sort: Sort,
    limit: int,
    filter: FilterShape,
    tenant_id: TenantRef,
    now: Moment,
    after: tuple[Any, Any] | None,
) -> Any:
    query = ListQuery(SessionFilter(), sort, limit)
    key = SORT_KEYS[query.field]
    where = filter_clause(filter, tenant_id, now)
    if after is not None:
        where = and_(where, after_clause(key, *after, query.descending))
    if not filter:
        # the tenant's rows in the order's own index: its first entries are the page
        order = ordered(key, TIE_BREAK, query.descending)
        return select(*page_columns()).where(where).order_by(*order).limit(query.limit + 1)
    # filtered: the page's keys first, where an index holds what the filter compares (every
    # sort index carries the expiry, the session type and the user name; the address index
    # its address), then the table's rows of the page alone, not of every entry the filter
    # passed over (`session_type=mobile` + a /16 sorted by name at ten million sessions:
    # 2,800 rows read for 51)
    keys = (
        select(_s.session_id, key.label("sort_key"))
        .where(where)
        .order_by(*ordered(key, TIE_BREAK, query.descending))
        .limit(query.limit + 1)
        .subquery()
    )
    return rows_of(keys, tenant_id, query.descending)


def ordered(key: Any, tie: Any, descending: bool) -> tuple[Any, Any]:
    """`key` then `tie`, in the order's direction."""
    return (key.desc(), tie.desc()) if descending else (key.asc(), tie.asc())


def rows_of(keys: Any, tenant_id: TenantRef, descending: bool) -> Any:
    """The page's columns of the rows `keys` names (a subquery of `session_id`, `sort_key`
    and any counts, each carried as `w_<name>`), in the order's direction, read from the
    table by their key in the statement that found them."""
    at = (_s.tenant_id == tenant_id) & (_s.session_id == keys.c.session_id)
    counts = [c.label(f"w_{c.name}") for c in keys.c if c.name not in ("session_id", "sort_key")]
    return (
        select(*page_columns(), *counts)
        .join_from(keys, sessions, at)
        .order_by(*ordered(keys.c.sort_key, binary_text(keys.c.session_id), descending))
    )


def _shape(query: ListQuery) -> tuple[tuple[Sort, int, bool, FilterShape], dict[str, Any]]:
    """What a page statement is built from (the order, the page's size, whether it starts
    after a position, the filter's shape), and the filter's values, its parameters with the
    tenant, the moment and the position (`_values`)."""
    shape, values = filter_parameters(query.filter)
    return (query.sort, query.limit, query.after is not None, shape), values


@functools.lru_cache(maxsize=256)
def _page_of_shape(sort: Sort, limit: int, resumed: bool, filter: FilterShape) -> Any:
    """A page's statement, built once per shape (`_shape`): building and keying it cost
    about half a millisecond of Python on every page."""
    after = None
    if resumed:
        after = (
            bindparam("l_after", type_=SORT_KEYS[ListQuery(SessionFilter(), sort).field].type),
            bindparam("l_after_id", type_=String()),
        )
    return _page_statement(sort, limit, filter, TENANT, NOW, after)


def _values(
    query: ListQuery, filtered: dict[str, Any], tenant_id: str, now: datetime
) -> dict[str, Any]:
    values: dict[str, Any] = {**filtered, "l_tenant": tenant_id, "l_now": now}
    if query.after is not None:
        values.update(l_after=query.after.value, l_after_id=query.after.session_id)
    return values


async def fetch_page(
    conn: AsyncConnection, store: Store, query: ListQuery, tenant_id: str, now: datetime
) -> Page:
    """Up to `query.limit` rows after `query.after`, in the query's order; the statement is
    built once per shape (`_page_of_shape`) and run by the store (`Store.run`)."""
    shape, filtered = _shape(query)
    values = _values(query, filtered, tenant_id, now)
    return as_page(query, row_dicts(await store.run(conn, _page_of_shape(*shape), values)))


async def fetch_first_page(
    conn: AsyncConnection, store: Store, query: ListQuery, tenant_id: str, now: datetime
) -> tuple[Page, int]:
    """The first `query.limit` rows and how many match (`Store.active_count`) in one
    statement, so both are of one snapshot without a transaction. The total rides on every
    row; a first page without rows has no match. The statement is built once per shape and
    store (`Store.built_once`)."""
    assert query.after is None, "a first page"
    shape, filtered = _shape(query)

    def build() -> Any:
        total = store.active_count(shape[3], TENANT, NOW)
        return _page_of_shape(*shape).add_columns(total.label(_TOTAL))

    statement = store.built_once(("first page", *shape), build)
    values = _values(query, filtered, tenant_id, now)
    rows = row_dicts(await store.run(conn, statement, values))
    matches = int(rows[0][_TOTAL]) if rows else 0
    for row in rows:
        del row[_TOTAL]
    return as_page(query, rows), matches


def as_page(query: ListQuery, rows: Sequence[Mapping[str, Any]]) -> Page:
    """The page of rows read in the query's order, one past its limit when there are more:
    at most `query.limit` of them, and the position after the last when more follow."""
    more = len(rows) > query.limit
    shown = list(rows[: query.limit])
    after = None
    if more:
        last = shown[-1]
        after = Position(query.sort, sort_value(last, query.field), str(last["session_id"]))
    return Page(rows=shown, after=after)


async def iterate(
    store: Store,
    query: ListQuery,
    tenant_id: str,
    now: datetime,
    hold: Callable[[], AbstractAsyncContextManager[None]] | None = None,
) -> AsyncIterator[Mapping[str, Any]]:
    """Every matching row in order, a page per short transaction (for the CSV export);
    `hold`: entered around each page's read, before its connection is checked out."""
    while True:
        held = hold() if hold is not None else contextlib.nullcontext()
        async with held, store.engine.connect() as conn:  # the slot first, then the connection
            page = await fetch_page(conn, store, query, tenant_id, now)
        for row in page.rows:
            yield row
        if page.after is None:
            return
        query = ListQuery(query.filter, query.sort, query.limit, page.after)


async def fetch_session(
    conn: AsyncConnection, tenant_id: str, session_id: str, now: datetime
) -> tuple[Row[Any], list[Row[Any]]] | None:
    """A listed session of the tenant in any state, with its lifecycle history; None if unknown.

    The row carries `active`: whether the session is active at `now` (`read_model.active`).
    """
    found = (
        await conn.execute(
            select(
                sessions,
                policy_outdated().label("policy_outdated"),
                active_condition(now).label("active"),
            ).where(
                _s.tenant_id == tenant_id,
                _s.session_id == session_id,
                listed_condition(),
                _s.created_at.is_not(None),
            )
        )
    ).first()
    if found is None:
        return None
    history = (
        await conn.execute(
            select(session_history)
            .where(
                session_history.c.tenant_id == tenant_id,
                session_history.c.session_id == session_id,
            )
            .order_by(session_history.c.occurred_at, session_history.c.event_id)
        )
    ).all()
    return found, list(history)
