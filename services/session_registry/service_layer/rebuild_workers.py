"""A rebuild shared among processes: each replays its own partitions into the same database.

Python decodes and folds on one core per process; on a machine with cores to spare (or with
the database elsewhere) a rebuild goes about as many times faster as there are workers.
"""

from __future__ import annotations

import asyncio
import multiprocessing
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from read_model.database import open_store
from session_contracts.kafka_clients import new_consumer, start_consumer, stop_consumer
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.partitions import topic_partitions
from session_registry.runtime import tune_gc
from session_registry.service_layer.replay import replay


def _worker(
    connection: KafkaSettings,
    topics: Topics,
    into_url: str,
    consumer: str,
    mine: list[int],
    options: Any,
) -> tuple[int, int]:
    tune_gc()

    async def _run() -> tuple[int, int]:
        store = open_store(into_url)
        try:
            return await replay(connection, topics, store, consumer, partitions=mine, **options)
        finally:
            await store.dispose()

    return asyncio.run(_run())


async def _partition_ids(connection: KafkaSettings, topic: str) -> list[int]:
    kafka = new_consumer(connection)
    await start_consumer(kafka)
    try:
        return [tp.partition for tp in await topic_partitions(kafka, topic)]
    finally:
        await stop_consumer(kafka)


async def replay_in_workers(
    connection: KafkaSettings,
    topics: Topics,
    into_url: str,
    consumer: str,
    workers: int,
    **options: Any,
) -> tuple[int, int]:
    """Replay the events topic with `workers` processes; return (events, dead letters)."""
    ids = await _partition_ids(connection, topics.events)
    shares = [ids[i::workers] for i in range(workers) if ids[i::workers]]
    running = asyncio.get_running_loop()
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=len(shares), mp_context=context) as pool:
        results = await asyncio.gather(
            *(
                running.run_in_executor(
                    pool, _worker, connection, topics, into_url, consumer, share, options
                )
                for share in shares
            )
        )
    return sum(r[0] for r in results), sum(r[1] for r in results)
