"""Replaying the event log from the beginning into a fresh database.

The rebuild reads `sessions.events` up to the end offsets seen when it starts (`replay`, in this
process or shared among several by `rebuild_workers`), folds it with the same ingestor as the
live registry but publishes nothing, and stores its positions under a consumer name of its own;
run it again on the same database and it resumes where it stopped.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select

from read_model.database import open_store, upgrade_schema
from read_model.tables import session_history, sessions
from session_contracts.record_signing import SignedExpiries
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.positions import load_positions
from session_registry.service_layer.rebuild_workers import replay_in_workers
from session_registry.service_layer.replay import replay
from session_registry.service_layer.reporting import Report


@dataclass
class RebuildReport:
    """What a rebuild read and wrote, and how fast."""

    consumer: str
    events: int
    dead_letters: int
    sessions: int
    history: int
    seconds: float
    positions: dict[tuple[str, int], int]

    @property
    def events_per_second(self) -> float:
        """Events read per second of the whole rebuild."""
        return self.events / self.seconds if self.seconds > 0 else 0.0


async def rebuild(
    connection: KafkaSettings,
    topics: Topics,
    into_url: str,
    consumer: str,
    *,
    workers: int = 1,
    max_records: int = 20_000,
    max_partition_fetch_bytes: int = 8 * 1024 * 1024,
    until: datetime | None = None,
    report: Report | None = None,
    expiries: SignedExpiries | None = None,
) -> RebuildReport:
    """Fold the whole event log (as of now, or as of `until`) into the database at `into_url`.

    With `workers` > 1 the partitions are shared among that many processes (a session lives
    in one partition, so they never touch the same rows); `report` is called in this process
    only (workers = 1). `expiries`: how the live registry reads `session.expired`
    (`RegistrySettings.signed_expiries`).
    """
    store = open_store(into_url)
    started = time.perf_counter()
    try:
        # The current schema before any row: the fold writes contract v2 rows (handles, keys
        # qualified by tenant), which only revision 0201's keys accept. The indexes the store
        # builds faster in one pass than row by row come off for the replay (`bulk_load`).
        await upgrade_schema(store)
        fetch = {
            "max_records": max_records,
            "max_partition_fetch_bytes": max_partition_fetch_bytes,
            "until": until,
            "expiries": expiries,
        }
        async with store.bulk_load():
            if workers > 1:
                events, dead = await replay_in_workers(
                    connection, topics, into_url, consumer, workers, **fetch
                )
            else:
                events, dead = await replay(
                    connection,
                    topics,
                    store,
                    consumer,
                    max_records=max_records,
                    max_partition_fetch_bytes=max_partition_fetch_bytes,
                    until=until,
                    report=report,
                    expiries=expiries,
                )
        seconds = time.perf_counter() - started
        async with store.engine.connect() as conn:
            session_count = (
                await conn.execute(select(func.count()).select_from(sessions))
            ).scalar_one()
            history_count = (
                await conn.execute(select(func.count()).select_from(session_history))
            ).scalar_one()
            positions = await load_positions(conn, consumer, {topics.events})
    finally:
        await store.dispose()
    return RebuildReport(
        consumer=consumer,
        events=events,
        dead_letters=dead,
        sessions=int(session_count),
        history=int(history_count),
        seconds=seconds,
        positions=positions,
    )
