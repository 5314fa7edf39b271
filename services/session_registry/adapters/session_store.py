"""Session rows and their history as the registry reads and writes them: states in, states out.

What differs by backend (bulk statements, row locks) is the store's (`uow.store`); this module
turns `SessionState`s and `HistoryEntry`s into the store's rows and back.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime, timedelta
from operator import attrgetter
from typing import Any

from sqlalchemy import ColumnElement, Select, delete, or_, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.active import (
    never_created_condition,
    past_retention_condition,
    unswept_condition,
)
from read_model.store import HISTORY_COLUMNS, SESSION_COLUMNS, session_row
from read_model.tables import session_history, sessions
from read_model.unit_of_work import UnitOfWork
from session_registry.domain.history import HistoryEntry
from session_registry.domain.state import COLUMNS, SessionState

_row_of = attrgetter(*COLUMNS)
_history_row_of = attrgetter(*HISTORY_COLUMNS)
# SessionState(*row) relies on this: its fields are the columns of `sessions`, in their order
# (tests/unit/registry/test_registry_state_columns.py)


def state_from_row(row: Any) -> SessionState:
    """A SessionState from a `sessions` row (a Row or a mapping)."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    return SessionState(*session_row([mapping[name] for name in SESSION_COLUMNS]))


async def select_states(conn: AsyncConnection, query: Select[Any]) -> list[SessionState]:
    """Run a query over all of `sessions`' columns and return its rows as states."""
    return [SessionState(*session_row(row)) for row in await conn.execute(query)]


async def lock_states(
    uow: UnitOfWork, query: Select[Any], *, skip_locked: bool = False
) -> list[SessionState]:
    """`select_states`, locking the rows until the unit of work ends (`Store.for_update`)."""
    rows = await uow.store.select_sessions(uow.conn, query, lock=True, skip_locked=skip_locked)
    return [SessionState(*row) for row in rows]


async def load_sessions(
    uow: UnitOfWork, keys: Collection[tuple[str, str]], *, lock: bool = False
) -> dict[tuple[str, str], SessionState]:
    """The stored states of these (tenant_id, session_id) keys; absent keys are left out."""
    if not keys:
        return {}
    rows = await uow.store.load_sessions(uow.conn, keys, lock=lock)
    return {(row[0], row[1]): SessionState(*row) for row in rows}


async def save_sessions(uow: UnitOfWork, states: Iterable[SessionState]) -> int:
    """Insert or overwrite these session rows (in key order); return how many."""
    rows = sorted(map(_row_of, states))
    await uow.store.save_sessions(uow.conn, rows)
    return len(rows)


async def claim_sessions(uow: UnitOfWork, states: Iterable[SessionState]) -> None:
    """Store these states' rows where no row of their key is stored; leave stored rows as they
    are. For a writer that read these keys absent (no row to lock): once this returns it holds
    each key's row, its own or one another writer stored meanwhile (on PostgreSQL the insert
    waits for that writer's transaction to end), so reading the keys again, locked, gives what
    to fold into. Writing over a row it never read would wipe what the other writer stored."""
    rows = [dict(zip(SESSION_COLUMNS, row, strict=True)) for row in sorted(map(_row_of, states))]
    if rows:
        key = [sessions.c.tenant_id, sessions.c.session_id]
        statement = uow.store.insert(sessions).on_conflict_do_nothing(index_elements=key)
        await uow.conn.execute(statement, rows)


async def save_history(uow: UnitOfWork, entries: Iterable[HistoryEntry]) -> None:
    """Record history entries; an entry already recorded (same event id) is left as it is."""
    await uow.store.save_history(uow.conn, [_history_row_of(entry) for entry in entries])


async def due_for_expiry(
    uow: UnitOfWork, now: datetime, limit: int, *, hold: timedelta = timedelta(0)
) -> Sequence[SessionState]:
    """Up to `limit` open sessions past `expires_at` at `now`, oldest expiry first, whose
    creation the broker appended no later than `now`, or more than `hold` after it (a broker
    whose clock is far ahead would otherwise hold the session for as long).

    The sweeper's `now` is its clock less the activity grace: a creation read before another
    of the same session appended earlier (a producer writes it to another partition, which the
    registry reads first) is the session's until that one is read. One dated back with a short
    policy has a deadline long past; waiting the grace past its append gives the real one, on
    a partition the registry is behind on, that long to come in (a review, 2026-12-06). Rows
    another writer holds are skipped (the next sweep gets them).
    """
    appended = sessions.c.creation_appended_at
    query = (
        select(sessions)
        .where(
            unswept_condition(now),
            or_(appended.is_(None), appended <= now, appended > now + hold),
        )
        .order_by(sessions.c.expires_at, sessions.c.tenant_id, sessions.c.session_id)
        .limit(limit)
    )
    return await lock_states(uow, query, skip_locked=True)


async def delete_never_created(uow: UnitOfWork, now: datetime, limit: int) -> int:
    """Delete up to `limit` sessions never created past their `expires_at`, with their history.

    They were seen only through activity, a termination or an expiry (records anyone may
    produce for made-up sessions); their history holds the terminations and expiries, and goes
    with them, so such records leave nothing behind.
    """
    earliest = (sessions.c.expires_at, sessions.c.tenant_id, sessions.c.session_id)
    return await _delete_with_history(uow, never_created_condition(now), limit, earliest)


async def delete_past_retention(uow: UnitOfWork, before: datetime, limit: int) -> int:
    """Delete up to `limit` ended sessions whose end and `expires_at` lie before `before`
    (now - the retention of ended sessions), with their history. In no order: sorting a
    backlog of millions for each batch would cost more than the deletions."""
    return await _delete_with_history(uow, past_retention_condition(before), limit)


async def _delete_with_history(
    uow: UnitOfWork,
    due: ColumnElement[bool],
    limit: int,
    order_by: Sequence[ColumnElement[Any]] = (),
) -> int:
    """Delete up to `limit` sessions meeting `due` (the first by `order_by`), with their
    history. Rows another writer holds are skipped (the next sweep gets them), and `due` is
    repeated on the DELETE itself: a row a concurrent batch changed meanwhile (a late
    `session.created`, say) is re-checked under its lock and kept, with its history."""
    key = tuple_(sessions.c.tenant_id, sessions.c.session_id)
    chosen = (
        select(sessions.c.tenant_id, sessions.c.session_id)
        .where(due)
        .order_by(*order_by)
        .limit(limit)
    )
    locked = uow.store.for_update(chosen, skip_locked=True)
    keys = [(row.tenant_id, row.session_id) for row in await uow.conn.execute(locked)]
    if not keys:
        return 0
    deleted = await uow.conn.execute(
        delete(sessions)
        .where(key.in_(keys), due)
        .returning(sessions.c.tenant_id, sessions.c.session_id)
    )
    gone = [(row.tenant_id, row.session_id) for row in deleted]
    if gone:
        history_key = tuple_(session_history.c.tenant_id, session_history.c.session_id)
        await uow.conn.execute(delete(session_history).where(history_key.in_(gone)))
    return len(gone)


async def recorded_events(
    conn: AsyncConnection, events: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (tenant_id, event_id) the history holds: lifecycle events applied."""
    if not events:
        return set()
    key = tuple_(session_history.c.tenant_id, session_history.c.event_id)
    query = select(session_history.c.tenant_id, session_history.c.event_id).where(
        key.in_(sorted(events))
    )
    return {(row.tenant_id, row.event_id) for row in await conn.execute(query)}
