"""The Active User Sessions list: a page with its total, every match for the export, and one
session with its history."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator, Mapping
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from admin_api.adapters import session_listing
from admin_api.adapters.session_search import first_page_and_total
from admin_api.auth import Admin
from admin_api.domain.cursors import BadCursor, CursorCodec
from admin_api.domain.errors import InvalidParameter, NotFound
from admin_api.domain.listing import (
    DEFAULT_SORT,
    ListQuery,
    Sort,
    decode_cursor,
    encode_cursor,
    page_scope,
)
from admin_api.runtime import Clock
from admin_api.service_layer.tenant_slots import TenantSlots
from read_model.session_query import is_search, may_walk
from read_model.store import Store
from session_contracts.models import SessionFilter

EXPORT_BATCH = 1000
"""Rows the export reads per short transaction."""


@dataclass(frozen=True)
class PageRequest:
    """One page of the list: which sessions, in which order, how many, after which cursor."""

    filter: SessionFilter
    sort: Sort = DEFAULT_SORT
    limit: int = 50
    cursor: str | None = None
    """`next_cursor` of the previous page, issued for the same tenant, filter and sort."""
    exact_total: bool = False
    """Count every match of a search, however many (else the total may be a lower bound)."""


@dataclass(frozen=True)
class ListedPage:
    """Read-model rows of one page, the next page's cursor, and how many sessions match."""

    rows: list[Mapping[str, Any]]
    next_cursor: str | None
    total: int
    as_of: datetime
    """The moment the page and the total were read."""
    total_exact: bool = True
    """False: `total` is a lower bound, at least that many sessions match."""


async def list_sessions(
    request: PageRequest,
    admin: Admin,
    store: Store,
    cursors: CursorCodec,
    clock: Clock,
    searches: TenantSlots | None = None,
) -> ListedPage:
    """A page of the tenant's active sessions and the filter's total (later pages carry the
    first page's count); InvalidParameter naming `cursor` for a cursor not issued for this
    tenant, filter and sort.

    A search (a text condition: its rarest terms may read the tenant's every row; or
    `policy_outdated`, which reads it always: `may_walk`) first takes
    one of the tenant's `searches` slots, before any connection is checked out, and is refused
    (`SearchBudgetSpent`) while the tenant's searches owe this process time."""
    if searches is not None and may_walk(request.filter):
        async with searches.hold(admin.tenant_id):
            return await _list_sessions(request, admin, store, cursors, clock)
    return await _list_sessions(request, admin, store, cursors, clock)


async def _list_sessions(
    request: PageRequest, admin: Admin, store: Store, cursors: CursorCodec, clock: Clock
) -> ListedPage:
    now = clock()
    query = ListQuery(request.filter, request.sort, request.limit)
    scope = page_scope(admin.tenant_id, query)
    if request.cursor is not None:
        try:
            after = decode_cursor(cursors, scope, request.cursor, request.sort)
        except BadCursor as exc:
            raise InvalidParameter("cursor", str(exc), request.cursor) from None
        query = replace(query, after=after)

    async def page(conn: AsyncConnection) -> session_listing.Page:
        return await session_listing.fetch_page(conn, store, query, admin.tenant_id, now)

    async def total(conn: AsyncConnection) -> int:
        return await store.count_active(conn, query.filter, admin.tenant_id, now)

    carried = query.after
    counted_at = now  # when `matches` was read: this page's moment unless carried
    if (
        carried is not None
        and carried.total is not None
        and (carried.total_exact or not request.exact_total)
    ):
        # a later page: the first page's count stands, and the moment it was read
        async with store.engine.connect() as conn:
            found = await page(conn)
        matches, exact = carried.total, carried.total_exact
        counted_at = carried.total_as_of or now
    elif carried is None and is_search(query.filter):
        async with store.engine.connect() as conn:
            searched = await first_page_and_total(
                store, conn, query, admin.tenant_id, now, exact=request.exact_total
            )
        found, matches, exact = searched.page, searched.total, searched.exact
    elif carried is None:
        # the first page and its total in one statement: one snapshot, no transaction
        async with store.engine.connect() as conn:
            reading = await store.one_statement(conn)
            found, matches = await session_listing.fetch_first_page(
                reading, store, query, admin.tenant_id, now
            )
        exact = True
    else:
        # one snapshot for both: a page and a total that disagree (a session counted but not
        # listed) would be read between the registry's commits otherwise
        (found, matches), exact = await store.read_together(page, total), True
    next_cursor = None
    if found.after is not None:
        carried = replace(found.after, total=matches, total_exact=exact, total_as_of=counted_at)
        next_cursor = encode_cursor(cursors, scope, carried)
    return ListedPage(
        rows=found.rows,
        next_cursor=next_cursor,
        total=matches,
        as_of=counted_at,
        total_exact=exact,
    )


@dataclass(frozen=True)
class ExportRequest:
    """Every session a filter matches, in an order."""

    filter: SessionFilter
    sort: Sort = DEFAULT_SORT


async def export_sessions(
    request: ExportRequest,
    admin: Admin,
    store: Store,
    clock: Clock,
    searches: TenantSlots | None = None,
) -> AsyncIterator[Mapping[str, Any]]:
    """Every matching row of the tenant in order, a batch per short transaction.

    The first batch is read before this returns: a database that is down fails the call, not
    the iteration (an export answered 503, not a 200 cut short). With a text condition each
    batch first takes one of the tenant's `searches` slots, as a list request does, and its
    time is charged to the tenant's search budget; the first batch is refused when the budget
    is spent (`SearchBudgetSpent`), the later ones wait until it is repaid: an export that
    started is never cut short, and goes on at the pace of its tenant's budget.
    """
    query = ListQuery(request.filter, request.sort, EXPORT_BATCH)
    hold = None
    if searches is not None and may_walk(request.filter):
        slots, batches = searches, itertools.count()

        def hold() -> AbstractAsyncContextManager[None]:
            return slots.hold(admin.tenant_id, refuse=next(batches) == 0)

    rows = session_listing.iterate(store, query, admin.tenant_id, clock(), hold)
    first = await anext(rows, None)

    async def every_row() -> AsyncIterator[Mapping[str, Any]]:
        if first is not None:
            yield first
            async for row in rows:
                yield row

    return every_row()


@dataclass(frozen=True)
class SessionRecord:
    """One listed session in any state, whether it is active now, and its history."""

    fields: Mapping[str, Any]
    """The read-model row (the `sessions` columns, `policy_outdated` and `active`)."""
    active: bool
    history: list[Row[Any]]
    """Its lifecycle events, oldest first."""


async def session_detail(
    session_id: str, admin: Admin, store: Store, clock: Clock
) -> SessionRecord:
    """One browser or mobile session of the tenant; NotFound for any other id."""
    now = clock()
    async with store.engine.connect() as conn:
        found = await session_listing.fetch_session(conn, admin.tenant_id, session_id, now)
    if found is None:
        raise NotFound("no such session")
    row, history = found
    fields: Mapping[str, Any] = dict(row._mapping)
    return SessionRecord(fields=fields, active=bool(fields["active"]), history=history)
