"""PostgreSQL bulk statements: a whole batch as one statement over arrays (`unnest`).

asyncpg encodes each column's array in C, so thousands of rows cost one round trip and almost
no Python; the statements still run through SQLAlchemy's connection (`exec_driver_sql`), inside
its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime
from operator import attrgetter
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.tables import outbox, revocations, session_history, sessions
from session_contracts.models import as_utc
from session_registry.domain.history import HistoryEntry
from session_registry.domain.state import COLUMNS, SessionState

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_KEY = ("tenant_id", "session_id")
_row_of = attrgetter(*COLUMNS)
_TIMES = [
    COLUMNS.index(c)
    for c in ("created_at", "last_activity_at", "current_ip_at", "expires_at", "ended_at")
]


def _state(row: Sequence[Any]) -> SessionState:
    # asyncpg stores datetime.max / datetime.min (9999-12-31T23:59:59.999999Z, 0001-01-01Z: both
    # legal in the contract) as +/-infinity and hands them back naive; everything stored is UTC
    values = list(row)
    for i in _TIMES:
        value = values[i]
        if value is not None:
            values[i] = as_utc(value)
    return SessionState(*values)


def _array(table: Table, column: str) -> str:
    return f"{table.c[column].type.compile(dialect=_DIALECT)}[]"


def _insert(table: Table, columns: Sequence[str], tail: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    arrays = ", ".join(f"${i}::{_array(table, c)}" for i, c in enumerate(columns, 1))
    return f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) {tail}"


_SESSIONS_UPSERT = _insert(
    sessions,
    COLUMNS,
    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET "
    + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in COLUMNS if c not in _KEY),
)
_HISTORY_COLUMNS = ("event_id", "tenant_id", "session_id", "type", "occurred_at", "detail")
_HISTORY_INSERT = _insert(
    session_history, _HISTORY_COLUMNS, "ON CONFLICT (event_id) DO NOTHING"
).replace("$6::JSON[]", "$6::TEXT[]::JSON[]")
_REVOCATIONS_UPSERT = _insert(
    revocations,
    ("tenant_id", "session_id", "valid_until"),
    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET valid_until = EXCLUDED.valid_until",
)
# ids (the relay's order) are drawn in the order of the arrays
_OUTBOX_INSERT = (
    "INSERT INTO outbox (topic, key, value) SELECT topic, key, value FROM unnest("
    f"$1::{_array(outbox, 'topic')}, $2::{_array(outbox, 'key')}, $3::{_array(outbox, 'value')}"
    ") WITH ORDINALITY AS r(topic, key, value, n) ORDER BY n"
)
_SELECT = (
    f"SELECT {', '.join(COLUMNS)} FROM sessions "
    "WHERE (tenant_id, session_id) IN (SELECT * FROM unnest($1::VARCHAR[], $2::VARCHAR[])) "
    "ORDER BY tenant_id, session_id"
)


async def load_sessions(
    conn: AsyncConnection, keys: Collection[tuple[str, str]], *, lock: bool
) -> list[SessionState]:
    """The stored rows of these keys, locked in key order when `lock`."""
    tenants, session_ids = zip(*keys, strict=True) if keys else ((), ())
    statement = _SELECT + (" FOR UPDATE" if lock else "")
    result = await conn.exec_driver_sql(statement, (list(tenants), list(session_ids)))
    return [_state(row) for row in result]


async def save_sessions(conn: AsyncConnection, states: Sequence[SessionState]) -> None:
    """Upsert these rows in one statement."""
    columns: list[Any] = [list(values) for values in zip(*map(_row_of, states), strict=True)]
    await conn.exec_driver_sql(_SESSIONS_UPSERT, tuple(columns))


async def save_history(conn: AsyncConnection, entries: Sequence[HistoryEntry]) -> None:
    """Insert history rows in one statement; rows already there (same event id) stay."""
    await conn.exec_driver_sql(
        _HISTORY_INSERT,
        (
            [e.event_id for e in entries],
            [e.tenant_id for e in entries],
            [e.session_id for e in entries],
            [e.type for e in entries],
            [e.occurred_at for e in entries],
            [json.dumps(e.detail) for e in entries],
        ),
    )


async def add_to_outbox(
    conn: AsyncConnection, records: Sequence[tuple[str, bytes, bytes | None]]
) -> None:
    """Insert (topic, key, value) outbox rows in one statement, ids in the given order."""
    topics, keys, values = (list(column) for column in zip(*records, strict=True))
    await conn.exec_driver_sql(_OUTBOX_INSERT, (topics, keys, values))


async def save_revocations(
    conn: AsyncConnection, rows: Sequence[tuple[str, str, datetime]]
) -> None:
    """Upsert (tenant_id, session_id, valid_until) revocation rows in one statement."""
    tenants, session_ids, until = (list(column) for column in zip(*rows, strict=True))
    await conn.exec_driver_sql(_REVOCATIONS_UPSERT, (tenants, session_ids, until))
