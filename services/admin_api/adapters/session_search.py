"""The first page of a text search and its total in one pass over the matches.

A search (`q`, `user_name`, `session_id`, `device`) must visit every matching row to count it
anyway: on PostgreSQL the trigram indexes find the candidates and each is rechecked on the
table (`Store.search`); SQLite reads the tenant's rows. Taking the page's top rows from that
same pass costs a sort of the matches, where walking the sort order in parallel would visit a
second set of rows — often more of them for a rarer term.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from admin_api.adapters.session_listing import (
    COLUMNS,
    SORT_KEYS,
    Page,
    sort_value,
)
from admin_api.domain.listing import ListQuery, Position
from read_model.session_query import binary_text, filter_clause, policy_outdated
from read_model.store import Store
from read_model.tables import sessions
from session_contracts.models import SessionFilter

TEXT_CONDITIONS = ("q", "user_name", "session_id", "device")
_s = sessions.c


def is_search(filter: SessionFilter) -> bool:
    """Whether the filter has a substring condition the trigram indexes answer."""
    return any(getattr(filter, name) is not None for name in TEXT_CONDITIONS)


async def first_page_and_total(
    store: Store, conn: AsyncConnection, query: ListQuery, tenant_id: str, now: datetime
) -> tuple[Page, int]:
    """The first page of a search and how many sessions match, from one pass over the matches."""
    key = SORT_KEYS[query.field]

    def direction(column: Any) -> Any:
        return column.desc() if query.descending else column.asc()

    matches = (
        select(
            _s.tenant_id,
            _s.session_id,
            key.label("sort_key"),
            func.count().over().label("total"),
        )
        .where(filter_clause(query.filter, tenant_id, now))
        .order_by(direction(key), direction(binary_text(_s.session_id)))
        .limit(query.limit + 1)
        .subquery()
    )
    statement = (
        select(*COLUMNS, policy_outdated().label("policy_outdated"), matches.c.total)
        .join_from(
            sessions,
            matches,
            and_(_s.tenant_id == matches.c.tenant_id, _s.session_id == matches.c.session_id),
        )
        .order_by(direction(matches.c.sort_key), direction(binary_text(matches.c.session_id)))
    )
    async with store.search(conn):
        rows: list[dict[str, Any]] = [dict(r._mapping) for r in await conn.execute(statement)]
    total = int(rows[0]["total"]) if rows else 0
    more = len(rows) > query.limit
    rows = rows[: query.limit]
    after = None
    if more:
        last = rows[-1]
        after = Position(query.sort, sort_value(last, query.field), str(last["session_id"]))
    return Page(rows=list(rows), after=after), total
