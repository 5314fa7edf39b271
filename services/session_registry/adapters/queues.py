"""How full a table the registry works off is: the outbox, the deferred terminations."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Column, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from session_contracts.models import as_utc


async def queue_level(
    conn: AsyncConnection, stamped: Column[datetime], now: datetime | None
) -> tuple[int, float]:
    """How many rows `stamped`'s table holds, and the age in seconds of the oldest by that
    column (0: none). `now`: the clock that stamped the column; None when the database did
    (a server default), whose own clock is then read in the same statement."""
    query = select(func.count(), func.min(stamped), func.current_timestamp())
    count, oldest, database_now = (await conn.execute(query.select_from(stamped.table))).one()
    if not count or oldest is None:
        return 0, 0.0
    clock = as_utc(database_now) if now is None else now
    # `as_utc`: SQLite's CURRENT_TIMESTAMP is UTC without an offset
    return int(count), max(0.0, (clock - as_utc(oldest)).total_seconds())
