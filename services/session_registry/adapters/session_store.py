"""Reading and writing session rows and their history, in bulk, on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, select, tuple_
from sqlalchemy.dialects import sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.active import unswept_condition
from read_model.tables import session_history, sessions
from session_contracts.models import as_utc
from session_registry.adapters import pg_bulk
from session_registry.domain.history import HistoryEntry
from session_registry.domain.state import COLUMNS, SessionState

KEYS_PER_SELECT = 2000
ROWS_PER_INSERT = 2000
_TIME_COLUMNS = frozenset(
    {"created_at", "last_activity_at", "current_ip_at", "expires_at", "ended_at"}
)
_UPDATED = [c for c in COLUMNS if c not in {"tenant_id", "session_id"}]


def is_postgres(conn: AsyncConnection) -> bool:
    """Whether the connection talks to PostgreSQL (else SQLite)."""
    return conn.dialect.name == "postgresql"


def state_from_row(row: Any) -> SessionState:
    """A SessionState from a `sessions` row (a Row or a mapping)."""
    mapping = row._mapping if hasattr(row, "_mapping") else row
    values = {name: mapping[name] for name in COLUMNS}
    for name in _TIME_COLUMNS:
        if values[name] is not None:  # SQLite hands back naive datetimes; all stored is UTC
            values[name] = as_utc(values[name])
    if values["ip_packed"] is not None:
        values["ip_packed"] = bytes(values["ip_packed"])
    return SessionState(**values)


async def select_states(
    conn: AsyncConnection, query: Select[Any], *, lock: bool = False, skip_locked: bool = False
) -> list[SessionState]:
    """Run a query over `sessions` and return its rows as states (locked for update on PG)."""
    if lock and is_postgres(conn):
        query = query.with_for_update(skip_locked=skip_locked)
    result = await conn.execute(query)
    return [state_from_row(row) for row in result]


async def load_sessions(
    conn: AsyncConnection, keys: Collection[tuple[str, str]], *, lock: bool = False
) -> dict[tuple[str, str], SessionState]:
    """The stored states of these (tenant_id, session_id) keys; absent keys are left out."""
    found: dict[tuple[str, str], SessionState] = {}
    if not keys:
        return found
    if is_postgres(conn):
        return {s.key: s for s in await pg_bulk.load_sessions(conn, keys, lock=lock)}
    ordered = sorted(keys)  # one lock order for every writer: no deadlock cycles on PostgreSQL
    key_columns = tuple_(sessions.c.tenant_id, sessions.c.session_id)
    for start in range(0, len(ordered), KEYS_PER_SELECT):
        chunk = ordered[start : start + KEYS_PER_SELECT]
        query = (
            select(sessions)
            .where(key_columns.in_(chunk))
            .order_by(sessions.c.tenant_id, sessions.c.session_id)
        )
        for state in await select_states(conn, query, lock=lock):
            found[state.key] = state
    return found


def _sqlite_upsert() -> Any:
    statement = sqlite.insert(sessions)
    return statement.on_conflict_do_update(
        index_elements=[sessions.c.tenant_id, sessions.c.session_id],
        set_={name: statement.excluded[name] for name in _UPDATED},
    )


async def save_sessions(conn: AsyncConnection, states: Iterable[SessionState]) -> int:
    """Insert or overwrite these session rows; return how many."""
    ordered = sorted(states, key=lambda s: s.key)
    if not ordered:
        return 0
    if is_postgres(conn):
        await pg_bulk.save_sessions(conn, ordered)
        return len(ordered)
    rows = [state.as_row() for state in ordered]
    statement = _sqlite_upsert()
    for start in range(0, len(rows), ROWS_PER_INSERT):
        await conn.execute(statement, rows[start : start + ROWS_PER_INSERT])
    return len(rows)


async def save_history(conn: AsyncConnection, entries: Iterable[HistoryEntry]) -> None:
    """Record history entries; an entry already recorded (same event id) is left as it is."""
    listed = list(entries)
    if not listed:
        return
    if is_postgres(conn):
        await pg_bulk.save_history(conn, listed)
        return
    rows = [entry.as_row() for entry in listed]
    statement = sqlite.insert(session_history).on_conflict_do_nothing(
        index_elements=[session_history.c.event_id]
    )
    for start in range(0, len(rows), ROWS_PER_INSERT):
        await conn.execute(statement, rows[start : start + ROWS_PER_INSERT])


async def due_for_expiry(
    conn: AsyncConnection, now: datetime, limit: int
) -> Sequence[SessionState]:
    """Up to `limit` open sessions past `expires_at`, oldest expiry first.

    On PostgreSQL rows another writer holds are skipped (the next sweep gets them).
    """
    query = (
        select(sessions)
        .where(unswept_condition(now))
        .order_by(sessions.c.expires_at, sessions.c.tenant_id, sessions.c.session_id)
        .limit(limit)
    )
    return await select_states(conn, query, lock=True, skip_locked=True)
