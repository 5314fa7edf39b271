"""Swapping a rebuilt database in place of the live one.

The rebuilt database holds what the event log determines (sessions, history, positions on the
events topic). Everything else the live database knows but the log does not (applied commands,
termination requests, revocations awaiting tombstones, the outbox, the admin API's tables, and
positions on the commands topic) is copied over first; the rebuild's events positions are
stored under the live consumer name, so the live registry resumes where the rebuild stopped.

Stop the registry (and on PostgreSQL anything else connected) before swapping.
"""

from __future__ import annotations

import time

from sqlalchemy import delete, insert, select

from read_model.database import open_store
from read_model.tables import consumer_positions, metadata
from read_model.unit_of_work import UnitOfWork
from session_contracts.topics import Topics
from session_registry.adapters.positions import save_positions
from session_registry.service_layer.rebuild import RebuildReport

DERIVED = {"sessions", "session_history", "consumer_positions"}


async def carry_over(
    live_url: str, rebuilt_url: str, topics: Topics, live_consumer: str, report: RebuildReport
) -> dict[str, int]:
    """Copy what the log does not determine from the live database; return rows per table."""
    copied: dict[str, int] = {}
    source, target = open_store(live_url), open_store(rebuilt_url)
    try:
        async with source.engine.connect() as conn:
            tables = {
                name: [dict(r._mapping) for r in await conn.execute(select(table))]
                for name, table in metadata.tables.items()
                if name not in DERIVED
            }
            commands = [
                dict(r._mapping)
                for r in await conn.execute(
                    select(consumer_positions).where(consumer_positions.c.topic != topics.events)
                )
            ]

        async def _write(uow: UnitOfWork) -> None:
            tconn = uow.conn
            for name, rows in tables.items():
                table = metadata.tables[name]
                await tconn.execute(delete(table))
                if rows:
                    await tconn.execute(insert(table), rows)
                copied[name] = len(rows)
            if commands:
                await tconn.execute(insert(consumer_positions), commands)
            await save_positions(uow, live_consumer, report.positions)

        await UnitOfWork(target).run(_write)
    finally:
        await source.dispose()
        await target.dispose()
    return copied


async def swap(live_url: str, rebuilt_url: str) -> str:
    """Put the rebuilt database where the live one was; return where the old one went."""
    live, rebuilt = open_store(live_url), open_store(rebuilt_url)
    try:
        return await live.replace_with(rebuilt, time.strftime("%Y%m%d%H%M%S"))
    finally:
        await live.dispose()
        await rebuilt.dispose()
