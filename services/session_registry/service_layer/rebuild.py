"""Replaying the event log from the beginning into a fresh database.

The rebuild reads `sessions.events` with no consumer group (partitions assigned directly, up to
the end offsets seen when it starts), folds it with the same ingestor as the live registry but
publishes nothing, and stores its positions under a consumer name of its own; run it again on
the same database and it resumes where it stopped. Decoding the next batch overlaps with the
database writing the previous one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaConsumer, TopicPartition
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from session_contracts.topics import Topics
from session_registry.adapters.database import (
    BASE_REVISION,
    current_revision,
    make_engine,
    upgrade_schema,
)
from session_registry.adapters.dead_letters import CountingDeadLetters
from session_registry.adapters.positions import load_positions
from session_registry.adapters.tables import session_history, sessions
from session_registry.service_layer.ingest import Ingestor
from session_registry.service_layer.projection import Projector


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


async def topic_partitions(consumer: AIOKafkaConsumer, topic: str) -> list[TopicPartition]:
    """Every partition of a topic (waiting briefly for metadata)."""
    for _ in range(50):
        # the consumer's public metadata calls keep only subscribed topics; ask for all
        cluster = await consumer._client.fetch_all_metadata()
        found = cluster.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        await asyncio.sleep(0.2)
    raise LookupError(f"topic {topic!r} not found on the broker")


async def replay(
    bootstrap_servers: str,
    topics: Topics,
    engine: AsyncEngine,
    consumer: str,
    *,
    partitions: Sequence[int] | None = None,
    max_records: int = 20_000,
    max_partition_fetch_bytes: int = 8 * 1024 * 1024,
) -> tuple[int, int]:
    """Fold the events topic (these partitions, or all) up to its end offsets now.

    Resumes from the positions stored under `consumer`; returns (events, dead letters).
    """
    kafka = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        group_id=None,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    dead_letters = CountingDeadLetters()
    ingestor = Ingestor(
        engine, Projector(topics, publish=False), consumer, dead_letters, lambda: datetime.now(UTC)
    )
    events = 0
    await kafka.start()
    try:
        assigned = [
            tp
            for tp in await topic_partitions(kafka, topics.events)
            if partitions is None or tp.partition in partitions
        ]
        kafka.assign(assigned)
        async with engine.connect() as conn:
            stored = await load_positions(conn, consumer, {topics.events})
        for tp in assigned:
            if (tp.topic, tp.partition) in stored:
                kafka.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await kafka.seek_to_beginning(tp)
        ends: dict[TopicPartition, int] = await kafka.end_offsets(assigned)
        remaining = {tp for tp in assigned if await kafka.position(tp) < ends[tp]}
        pending: asyncio.Task[object] | None = None
        while remaining:
            batch = await kafka.getmany(*remaining, timeout_ms=500, max_records=max_records)
            trimmed = {tp: [r for r in rs if r.offset < ends[tp]] for tp, rs in batch.items()}
            decoded = await ingestor.decode_yielding(trimmed)
            events += sum(len(rs) for rs in trimmed.values())
            if pending is not None:
                await pending
            pending = asyncio.create_task(ingestor.apply(decoded)) if decoded else None
            for tp in list(remaining):
                if await kafka.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        if pending is not None:
            await pending
    finally:
        await kafka.stop()
    return events, dead_letters.count


async def rebuild(
    bootstrap_servers: str,
    topics: Topics,
    into_url: str,
    consumer: str,
    *,
    workers: int = 1,
    max_records: int = 20_000,
    max_partition_fetch_bytes: int = 8 * 1024 * 1024,
) -> RebuildReport:
    """Fold the whole event log (as of now) into the database at `into_url`.

    With `workers` > 1 the partitions are shared among that many processes (a session lives
    in one partition, so they never touch the same rows).
    """
    from session_registry.service_layer.rebuild_workers import replay_in_workers

    engine = make_engine(into_url)
    started = time.perf_counter()
    try:
        # into an empty database: the tables first, the listing indexes once the rows are in
        # (one bulk index build is much cheaper than maintaining them row by row)
        if await current_revision(engine) is None:
            await upgrade_schema(engine, BASE_REVISION)
        else:
            await upgrade_schema(engine)
        fetch = {"max_records": max_records, "max_partition_fetch_bytes": max_partition_fetch_bytes}
        if workers > 1:
            events, dead = await replay_in_workers(
                bootstrap_servers, topics, into_url, consumer, workers, **fetch
            )
        else:
            events, dead = await replay(
                bootstrap_servers,
                topics,
                engine,
                consumer,
                max_records=max_records,
                max_partition_fetch_bytes=max_partition_fetch_bytes,
            )
        await upgrade_schema(engine)
        seconds = time.perf_counter() - started
        async with engine.connect() as conn:
            session_count = (
                await conn.execute(select(func.count()).select_from(sessions))
            ).scalar_one()
            history_count = (
                await conn.execute(select(func.count()).select_from(session_history))
            ).scalar_one()
            positions = await load_positions(conn, consumer, {topics.events})
    finally:
        await engine.dispose()
    return RebuildReport(
        consumer=consumer,
        events=events,
        dead_letters=dead,
        sessions=int(session_count),
        history=int(history_count),
        seconds=seconds,
        positions=positions,
    )
