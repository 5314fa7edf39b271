"""Two read models compared, session by session: a live one and a rebuild, before a swap.

Both databases are read in one pass each, ordered by key the same way (`Store.binary_order`:
code points, as Python compares strings), and merged, so memory stays flat whatever their
size. A session differs when it is in one only, when a column of its row differs (times in
UTC, the address bytes as stored), or when its history (lifecycle events by id) differs.
Ended sessions past the retention (`past_retention_condition`) can be left out on both sides:
the live registry's sweeper deletes them, a rebuild keeps them until its own. A column that
holds NULL for "not known" (`UNKNOWN_WHEN_NULL`) differs only where both sides know it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, Select, and_, false, func, not_, select

from read_model.active import past_retention_condition
from read_model.database import open_store
from read_model.store import Store
from read_model.tables import session_history, sessions
from session_contracts.models import as_utc
from session_registry.adapters.session_store import state_from_row
from session_registry.domain.state import COLUMNS
from session_registry.service_layer.reporting import Report

Key = tuple[str, str]

UNKNOWN_WHEN_NULL = frozenset({"creation_appended_at"})
"""Columns whose NULL means "not known": a live row folded before revision 1401 has no append
time for its creation, and a rebuild of the same log has one."""


@dataclass(frozen=True)
class Difference:
    """One session that differs: where it is missing, or what differs."""

    tenant_id: str
    session_id: str
    what: str
    """`only_in_left`, `only_in_right`, `row` or `history`."""
    columns: dict[str, tuple[Any, Any]]
    """For `row`: column -> (left, right); for `history`: event id -> (left, right)."""

    def as_json(self) -> dict[str, Any]:
        """One line of `diff`'s output."""
        return {
            "tenant_id": self.tenant_id,
            "session_id": self.session_id,
            "differs": self.what,
            "values": {name: [_plain(a), _plain(b)] for name, (a, b) in self.columns.items()},
        }


def _plain(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bytes):
        return value.hex()
    return value


async def _rows(store: Store, query: Select[Any]) -> AsyncIterator[Any]:
    async with store.engine.connect() as conn:
        result = await conn.stream(query.execution_options(yield_per=2000))
        async for row in result:
            yield row


def _kept(before: datetime) -> ColumnElement[bool]:
    """Rows not past the retention at `before`; a row without a verdict (a NULL time) is
    kept."""
    return not_(func.coalesce(past_retention_condition(before), false()))


def _session_query(store: Store, before: datetime | None) -> Select[Any]:
    c = sessions.c
    query = select(sessions)
    if before is not None:
        query = query.where(_kept(before))
    return query.order_by(store.binary_order(c.tenant_id), store.binary_order(c.session_id))


def _history_query(store: Store, before: datetime | None) -> Select[Any]:
    c = session_history.c
    query = select(c.tenant_id, c.session_id, c.event_id, c.type, c.occurred_at, c.detail)
    if before is not None:
        of_session = and_(
            sessions.c.tenant_id == c.tenant_id, sessions.c.session_id == c.session_id
        )
        query = query.select_from(session_history.outerjoin(sessions, of_session)).where(
            _kept(before)
        )
    return query.order_by(
        store.binary_order(c.tenant_id),
        store.binary_order(c.session_id),
        store.binary_order(c.event_id),
    )


async def _merge(
    left: AsyncIterator[tuple[Key, Any]], right: AsyncIterator[tuple[Key, Any]]
) -> AsyncIterator[tuple[Key, Any, Any]]:
    """Merge two key-ordered streams: (key, left item or None, right item or None)."""
    a = await anext(left, None)
    b = await anext(right, None)
    while a is not None or b is not None:
        if b is None or (a is not None and a[0] < b[0]):
            assert a is not None
            yield a[0], a[1], None
            a = await anext(left, None)
        elif a is None or b[0] < a[0]:
            yield b[0], None, b[1]
            b = await anext(right, None)
        else:
            yield a[0], a[1], b[1]
            a, b = await anext(left, None), await anext(right, None)


async def _states(
    store: Store, ignore: Collection[str], before: datetime | None
) -> AsyncIterator[tuple[Key, Any]]:
    async for row in _rows(store, _session_query(store, before)):
        state = state_from_row(row)
        yield state.key, {n: getattr(state, n) for n in COLUMNS if n not in ignore}


async def _histories(store: Store, before: datetime | None) -> AsyncIterator[tuple[Key, Any]]:
    """Each session's history as {event id: (type, occurred_at, detail)}, in key order."""
    pending: list[Any] = []
    async for row in _rows(store, _history_query(store, before)):
        if pending and (pending[0].tenant_id, pending[0].session_id) != (
            row.tenant_id,
            row.session_id,
        ):
            yield _history_of(pending)
            pending = []
        pending.append(row)
    if pending:
        yield _history_of(pending)


def _history_of(rows: list[Any]) -> tuple[Key, Any]:
    key = (rows[0].tenant_id, rows[0].session_id)
    return key, {r.event_id: (r.type, as_utc(r.occurred_at), r.detail) for r in rows}


def _differences(key: Key, what: str, left: Any, right: Any) -> Difference | None:
    if what == "history":  # no history on one side: every event of the other differs
        left, right = left or {}, right or {}
    elif left is None or right is None:
        side = "only_in_left" if right is None else "only_in_right"
        return Difference(key[0], key[1], side if what == "row" else what, {})
    names = sorted(set(left) | set(right), key=str)
    changed = {
        n: (left.get(n), right.get(n))
        for n in names
        if left.get(n) != right.get(n)
        and not (
            what == "row"
            and n in UNKNOWN_WHEN_NULL
            and (left.get(n) is None or right.get(n) is None)
        )
    }
    return Difference(key[0], key[1], what, changed) if changed else None


async def _count(store: Store) -> int:
    async with store.engine.connect() as conn:
        total = 0
        for table in (sessions, session_history):
            total += int((await conn.execute(select(func.count()).select_from(table))).scalar_one())
        return total


async def diff_read_models(
    left_url: str,
    right_url: str,
    *,
    ignore: Collection[str] = (),
    past_retention_before: datetime | None = None,
    report: Report | None = None,
) -> AsyncIterator[Difference]:
    """Every session that differs between the two read models (rows first, then histories).

    `past_retention_before` (now - the retention of ended sessions): sessions past it, in
    either model, are left out of both, with their history.
    """
    unknown = set(ignore) - set(COLUMNS)
    if unknown:
        raise ValueError(f"no column {sorted(unknown)} in sessions (columns: {', '.join(COLUMNS)})")
    left, right = open_store(left_url), open_store(right_url)
    try:
        total = await _count(left) + await _count(right)
        done = 0

        def seen(items: int) -> None:
            nonlocal done
            done += items
            if report is not None and done % 1000 < items:
                report(done, total)

        passes: list[tuple[str, Callable[[Store], AsyncIterator[tuple[Key, Any]]]]] = [
            ("row", lambda store: _states(store, ignore, past_retention_before)),
            ("history", lambda store: _histories(store, past_retention_before)),
        ]
        for what, read in passes:
            async for key, a, b in _merge(read(left), read(right)):
                seen(_size(what, a) + _size(what, b))
                found = _differences(key, what, a, b)
                if found is not None:
                    yield found
        if report is not None:
            report(total, total)
    finally:
        await left.dispose()
        await right.dispose()


def _size(what: str, item: Any) -> int:
    if item is None:
        return 0
    return 1 if what == "row" else len(item)
