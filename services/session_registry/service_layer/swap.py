"""Swapping a rebuilt database in place of the live one.

The rebuilt database holds what the event log determines (sessions, history, positions on the
events topic). Everything else the live database knows but the log does not (applied commands,
termination requests, revocations awaiting tombstones, the outbox, the admin API's tables, and
positions on the commands topic) is copied over first; the rebuild's events positions are
stored under the live consumer name, so the live registry resumes where the rebuild stopped.

Stop the registry (and on PostgreSQL anything else connected) before swapping.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from sqlalchemy import delete, insert, select, text
from sqlalchemy.engine import make_url

from read_model.database import is_sqlite, make_engine
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
    source, target = make_engine(live_url), make_engine(rebuilt_url)
    try:
        async with source.connect() as conn:
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
            await save_positions(tconn, live_consumer, report.positions)

        await UnitOfWork(target).run(_write)
    finally:
        await source.dispose()
        await target.dispose()
    return copied


def _swap_files(live: Path, rebuilt: Path, stamp: str) -> str:
    backup = live.with_name(f"{live.name}.{stamp}.bak")
    if live.exists():
        os.replace(live, backup)
    for suffix in ("-wal", "-shm"):
        stale = Path(f"{live}{suffix}")
        if stale.exists():
            os.replace(stale, Path(f"{backup}{suffix}"))
    os.replace(rebuilt, live)
    return str(backup)


async def swap(live_url: str, rebuilt_url: str) -> str:
    """Put the rebuilt database where the live one was; return where the old one went."""
    stamp = time.strftime("%Y%m%d%H%M%S")
    if is_sqlite(live_url) != is_sqlite(rebuilt_url):
        raise ValueError("both databases must be on the same backend to swap")
    if is_sqlite(live_url):
        return _swap_files(
            Path(make_url(live_url).database or ""),
            Path(make_url(rebuilt_url).database or ""),
            stamp,
        )
    live_name = make_url(live_url).database
    rebuilt_name = make_url(rebuilt_url).database
    backup_name = f"{live_name}_{stamp}_bak"
    maintenance = make_url(live_url).set(database="postgres")
    engine = make_engine(maintenance.render_as_string(hide_password=False))
    try:
        async with engine.connect() as conn:
            conn = await conn.execution_options(isolation_level="AUTOCOMMIT")
            await conn.execute(text(f'ALTER DATABASE "{live_name}" RENAME TO "{backup_name}"'))
            await conn.execute(text(f'ALTER DATABASE "{rebuilt_name}" RENAME TO "{live_name}"'))
    finally:
        await engine.dispose()
    return backup_name
