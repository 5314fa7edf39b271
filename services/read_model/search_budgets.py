"""The per-tenant budgets every admin API process shares (table `search_budgets`): written and
read by the admin API (`admin_api.service_layer.shared_budgets`), shown by `session-registry
status`.

A row is a token bucket: `seconds` left as of `at` (seconds since the epoch), refilling at
`size` a minute up to `size`. The upsert does the refill itself, so two processes adding
their spending at once both count (it takes the row's lock); a read returns the rows as stored
and the time it was made at, and the caller refills them (`Bucket.level`). The time is the
database's (`database_time`), not each process's: a process whose clock ran ahead would
otherwise stop every other process's refill until their clocks caught up with it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, case, delete, func, literal, select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.store import Store
from read_model.tables import search_budgets

_b = search_budgets.c


async def database_time(conn: AsyncConnection) -> float:
    """Now, in seconds since the epoch, by the clock every process shares: PostgreSQL's; a
    SQLite file is on this host, whose processes share its clock."""
    if conn.dialect.name == "postgresql":
        now = await conn.scalar(select(func.extract("epoch", func.clock_timestamp())))
        assert now is not None
        return float(now)
    return time.time()


def _refilled(
    seconds: ColumnElement[float], at: ColumnElement[float], now: float, size: float
) -> ColumnElement[float]:
    """`seconds` as of `now`: refilled since `at` at a sixtieth of `size` a second, at most
    `size` (`Bucket.level`, in SQL: under the row's lock)."""
    refilled = seconds + case((at < now, literal(now) - at), else_=0.0) * (size / 60)
    return case((refilled > size, literal(size)), else_=refilled)


async def spend(
    conn: AsyncConnection,
    store: Store,
    budget: str,
    spent: Mapping[str, float],
    *,
    now: float,
    size: float,
) -> None:
    """Take what each tenant's requests spent (`spent`, seconds) from its shared bucket of
    `size` seconds a minute, made full first if it has no row."""
    if not spent:
        return
    rows = [
        {
            "budget": budget,
            "tenant_id": tenant_id,
            "seconds": size - seconds,
            "at": now,
            "size": size,
        }
        for tenant_id, seconds in sorted(spent.items())  # one lock order for every process
    ]
    insert = store.insert(search_budgets).values(rows)
    new = insert.excluded
    statement = insert.on_conflict_do_update(
        index_elements=[_b.budget, _b.tenant_id],
        set_={
            # the row refilled to now, less what this process spent (the new row's size - it)
            "seconds": _refilled(_b.seconds, _b.at, now, size) - (size - new.seconds),
            "at": case((_b.at < now, literal(now)), else_=_b.at),
            "size": new.size,
        },
    )
    await conn.execute(statement)


@dataclass(frozen=True)
class Bucket:
    """One tenant's shared bucket of one budget, as stored."""

    seconds: float
    at: float
    size: float
    """Seconds a minute, as set in the process that last added to it."""

    def level(self, now: float, size: float | None = None) -> float:
        """What it holds at `now`: refilled since `at` at a sixtieth of `size` (by default the
        stored one) a second, at most `size`; a clock behind `at` refills nothing."""
        size = self.size if size is None else size
        return min(size, self.seconds + max(0.0, now - self.at) * size / 60)


Buckets = dict[str, dict[str, Bucket]]
"""Every stored bucket, by budget and tenant."""

_BUCKETS = select(_b.budget, _b.tenant_id, _b.seconds, _b.at, _b.size)
_BUCKETS_AT = select(func.extract("epoch", func.clock_timestamp()), *_BUCKETS.selected_columns)


async def buckets(conn: AsyncConnection) -> tuple[float, Buckets]:
    """Every stored bucket (any other is full), and the time they were read at by
    `database_time`'s clock; one statement."""
    rows: Sequence[Sequence[Any]]
    if conn.dialect.name != "postgresql":
        now, rows = time.time(), (await conn.execute(_BUCKETS)).all()
    else:
        read = (await conn.execute(_BUCKETS_AT)).all()
        now = float(read[0][0]) if read else time.time()  # no row: nothing to refill
        rows = [row[1:] for row in read]
    stored: Buckets = {}
    for budget, tenant_id, seconds, at, size in rows:
        stored.setdefault(budget, {})[tenant_id] = Bucket(float(seconds), float(at), float(size))
    return now, stored


async def forget_full(conn: AsyncConnection, budget: str, *, now: float, size: float) -> None:
    """Delete the rows whose bucket has refilled (a full bucket is the same as none). A process
    adding to one meanwhile keeps it: the delete reads the row again once it holds its lock."""
    await conn.execute(
        delete(search_budgets).where(
            _b.budget == budget, _refilled(_b.seconds, _b.at, now, size) >= size
        )
    )
