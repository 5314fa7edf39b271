"""How full a table the registry works off is: the outbox, the deferred terminations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from session_contracts.models import as_utc


async def queue_level(
    conn: AsyncConnection, stamped: Column[datetime], now: datetime
) -> tuple[int, float]:
    """How many rows `stamped`'s table holds, and the age in seconds of the oldest by that
    column (0: none)."""
    query = select(func.count(), func.min(stamped)).select_from(stamped.table)
    count, oldest = (await conn.execute(query)).one()
    if not count or oldest is None:
        return 0, 0.0
    # `as_utc`: SQLite's CURRENT_TIMESTAMP is UTC without an offset
    return int(count), max(0.0, (now - as_utc(oldest)).total_seconds())
