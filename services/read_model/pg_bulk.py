"""PostgreSQL bulk statements: a whole batch as one statement over arrays (`unnest`).

asyncpg encodes each column's array in C, so thousands of rows cost one round trip and almost
no Python; the statements still run through SQLAlchemy's connection (`exec_driver_sql`), inside
its transaction.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.store import (
    HISTORY_COLUMNS,
    REVOCATION_COLUMNS,
    SESSION_COLUMNS,
    HistoryRow,
    Key,
    OutboxRow,
    RevocationRow,
    SessionRow,
)
from read_model.tables import outbox, revocations, session_history, sessions

_DIALECT = postgresql.dialect()  # type: ignore[no-untyped-call]
_KEY = ("tenant_id", "session_id")


def _array(table: Table, column: str) -> str:
    return f"{table.c[column].type.compile(dialect=_DIALECT)}[]"


def _insert(table: Table, columns: Sequence[str], tail: str) -> str:
    names = ", ".join(f'"{c}"' for c in columns)
    arrays = ", ".join(f"${i}::{_array(table, c)}" for i, c in enumerate(columns, 1))
    return f"INSERT INTO {table.name} ({names}) SELECT * FROM unnest({arrays}) {tail}"


_SESSIONS_UPSERT = _insert(
    sessions,
    SESSION_COLUMNS,
    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET "
    + ", ".join(f'"{c}" = EXCLUDED."{c}"' for c in SESSION_COLUMNS if c not in _KEY),
)
_DETAIL = HISTORY_COLUMNS.index("detail")
_HISTORY_INSERT = _insert(
    session_history, HISTORY_COLUMNS, "ON CONFLICT (tenant_id, event_id) DO NOTHING"
).replace(f"${_DETAIL + 1}::JSON[]", f"${_DETAIL + 1}::TEXT[]::JSON[]")
_REVOCATIONS_UPSERT = _insert(
    revocations,
    REVOCATION_COLUMNS,
    "ON CONFLICT (tenant_id, session_id) DO UPDATE SET "
    # the record's fields from the one lasting longer (or any, over a row keeping none)
    + ", ".join(
        f'"{c}" = CASE WHEN revocations."{c}" IS NULL '
        f"OR EXCLUDED.valid_until >= revocations.valid_until "
        f'THEN EXCLUDED."{c}" ELSE revocations."{c}" END'
        for c in REVOCATION_COLUMNS[3:]
    )
    # never earlier: a later record cannot bring a tombstone forward
    + ", valid_until = GREATEST(revocations.valid_until, EXCLUDED.valid_until)",
)
# ids (the relay's order) are drawn in the order of the arrays
_OUTBOX_INSERT = (
    "INSERT INTO outbox (topic, key, value, headers) SELECT topic, key, value, headers FROM unnest("
    f"$1::{_array(outbox, 'topic')}, $2::{_array(outbox, 'key')}, $3::{_array(outbox, 'value')}, "
    f"$4::{_array(outbox, 'headers')}"
    ") WITH ORDINALITY AS r(topic, key, value, headers, n) ORDER BY n"
)
_SELECT = (
    f"SELECT {', '.join(SESSION_COLUMNS)} FROM sessions "
    "WHERE (tenant_id, session_id) IN (SELECT * FROM unnest($1::VARCHAR[], $2::VARCHAR[])) "
    "ORDER BY tenant_id, session_id"
)


async def load_sessions(
    conn: AsyncConnection, keys: Collection[Key], *, lock: bool
) -> list[Sequence[Any]]:
    """The stored rows of these keys (raw, as asyncpg returns them), locked in key order when
    `lock`."""
    tenants, session_ids = zip(*keys, strict=True) if keys else ((), ())
    statement = _SELECT + (" FOR UPDATE" if lock else "")
    result = await conn.exec_driver_sql(statement, (list(tenants), list(session_ids)))
    return list(result)


async def save_sessions(conn: AsyncConnection, rows: Sequence[SessionRow]) -> None:
    """Upsert these rows in one statement."""
    columns: list[Any] = [list(values) for values in zip(*rows, strict=True)]
    await conn.exec_driver_sql(_SESSIONS_UPSERT, tuple(columns))


async def save_history(conn: AsyncConnection, rows: Sequence[HistoryRow]) -> None:
    """Insert history rows in one statement; rows already there (same event id) stay."""
    columns: list[Any] = [list(values) for values in zip(*rows, strict=True)]
    columns[_DETAIL] = [json.dumps(detail) for detail in columns[_DETAIL]]
    await conn.exec_driver_sql(_HISTORY_INSERT, tuple(columns))


async def add_to_outbox(conn: AsyncConnection, records: Sequence[OutboxRow]) -> None:
    """Insert (topic, key, value, headers) outbox rows in one statement, ids in the given order."""
    topics, keys, values, headers = (list(column) for column in zip(*records, strict=True))
    await conn.exec_driver_sql(_OUTBOX_INSERT, (topics, keys, values, headers))


async def save_revocations(conn: AsyncConnection, rows: Sequence[RevocationRow]) -> None:
    """Upsert revocation rows in one statement."""
    columns = tuple(list(column) for column in zip(*rows, strict=True))
    await conn.exec_driver_sql(_REVOCATIONS_UPSERT, columns)
