"""Folding the events topic, up to its end offsets now, into a database: one process's share
of a rebuild.

Reads with no consumer group (partitions assigned directly), folds with the same ingestor as the
live registry but publishes nothing, and stores its positions under a consumer name of its own,
so a second run on the same database resumes where the first stopped. Decoding the next batch
overlaps with the database writing the previous one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from datetime import UTC, datetime

from aiokafka import TopicPartition

from read_model.store import Store
from session_contracts.kafka_clients import new_consumer, start_consumer, stop_consumer
from session_contracts.record_signing import SignedExpiries
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import CountingDeadLetters
from session_registry.adapters.partitions import offsets_after, topic_partitions
from session_registry.adapters.positions import load_positions
from session_registry.service_layer.ingest import Ingestor
from session_registry.service_layer.projection import Projector
from session_registry.service_layer.reporting import Report


async def replay(
    connection: KafkaSettings,
    topics: Topics,
    store: Store,
    consumer: str,
    *,
    partitions: Sequence[int] | None = None,
    max_records: int = 20_000,
    max_partition_fetch_bytes: int = 8 * 1024 * 1024,
    until: datetime | None = None,
    report: Report | None = None,
    expiries: SignedExpiries | None = None,
) -> tuple[int, int]:
    """Fold the events topic (these partitions, or all) up to its end offsets now.

    With `until`, only up to where the log had reached then: in each partition, the records
    before the first one stamped after `until` (`offsets_after`); the fold's clock is then
    `until` too (it dates a never-created session's deletion), so the result is the read model
    as of that moment. `expiries`: the live registry's (`RegistrySettings.signed_expiries`),
    so an unsigned `session.expired` is refused here as it is there. Resumes from the positions
    stored under `consumer`; returns (events, dead letters).
    """

    def clock() -> datetime:
        return until if until is not None else datetime.now(UTC)

    dead_letters = CountingDeadLetters()
    ingestor = Ingestor(
        store,
        Projector(topics, publish=False),
        consumer,
        dead_letters,
        clock,
        expiries,
    )
    events = 0
    # built here, right before the start that stops it if it fails: not before the steps
    # above, which would leave it unclosed if they raised (a review, stop 73)
    kafka = new_consumer(
        connection,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=max_partition_fetch_bytes,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await start_consumer(kafka)
    try:
        assigned = [
            tp
            for tp in await topic_partitions(kafka, topics.events)
            if partitions is None or tp.partition in partitions
        ]
        kafka.assign(assigned)
        async with store.engine.connect() as conn:
            stored = await load_positions(conn, consumer, {topics.events})
        for tp in assigned:
            if (tp.topic, tp.partition) in stored:
                kafka.seek(tp, stored[(tp.topic, tp.partition)])
            else:
                await kafka.seek_to_beginning(tp)
        ends: dict[TopicPartition, int] = (
            await kafka.end_offsets(assigned)
            if until is None
            else await offsets_after(kafka, assigned, until)
        )
        remaining = {tp for tp in assigned if await kafka.position(tp) < ends[tp]}
        total = sum([max(0, ends[tp] - await kafka.position(tp)) for tp in assigned])
        pending: asyncio.Task[object] | None = None
        while remaining:
            batch = await kafka.getmany(*remaining, timeout_ms=500, max_records=max_records)
            trimmed = {tp: [r for r in rs if r.offset < ends[tp]] for tp, rs in batch.items()}
            decoded = await ingestor.decode_yielding(trimmed)
            events += sum(len(rs) for rs in trimmed.values())
            if report is not None:
                report(events, total)
            if pending is not None:
                await pending
            pending = asyncio.create_task(ingestor.apply(decoded)) if decoded else None
            for tp in list(remaining):
                if await kafka.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        if pending is not None:
            await pending
    finally:
        await stop_consumer(kafka)
    return events, dead_letters.count
