"""PostgreSQL goes away mid-ingestion: the registry waits and retries, commits no offsets, resumes.

Runs on a PostgreSQL cluster of the test's own (`private_postgres`), stopped and started again
while events keep arriving on the shared broker. While the database is down the registry's
batches fail and are retried from the stored positions: it must neither stop nor move the
group's committed Kafka offsets. Once the database is back it catches up, and the read model
equals a clean rebuild from the log.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fault_support import (
    assert_equals_rebuild,
    consumer_alive,
    producer_on,
    running_registry,
    until,
)

from private_services import PrivatePostgres
from session_contracts.topics import Topics
from session_registry.workload import Workload, records

pytestmark = [pytest.mark.kafka, pytest.mark.postgres, pytest.mark.slow]


async def committed_offsets(bootstrap: str, group: str) -> dict[TopicPartition, int]:
    """The offsets the consumer group committed to Kafka."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        found = await admin.list_consumer_group_offsets(group)
        return {tp: meta.offset for tp, meta in found.items()}
    finally:
        await admin.close()


def retries(caplog: pytest.LogCaptureFixture) -> int:
    """How many times the registry has retried (a batch, or reading its stored positions)."""
    return sum("retrying" in r.getMessage() for r in caplog.records)


async def test_postgres_restart_mid_ingestion_is_waited_out_and_equals_a_rebuild(
    kafka_bootstrap: str,
    topics: Topics,
    private_postgres: PrivatePostgres,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="session_registry")
    url = private_postgres.database_url
    stream = list(records(Workload(sessions=240, activity=5, tenants=2, seed=21)))
    thirds = [stream[: len(stream) // 3], stream[len(stream) // 3 : 2 * len(stream) // 3]]
    thirds.append(stream[2 * len(stream) // 3 :])
    group = f"pg-fault-{uuid.uuid4().hex[:8]}"

    async def _committed(group: str, count: int) -> bool:
        return sum((await committed_offsets(kafka_bootstrap, group)).values()) == count

    async def send(part: list[tuple[bytes, bytes]]) -> None:
        futures = [await producer.send(topics.events, value, key=key) for key, value in part]
        for future in futures:
            await future

    async with (
        producer_on(kafka_bootstrap) as producer,
        running_registry(
            kafka_bootstrap, topics, url, consumer_group=group, batch_max_records=100
        ) as registry,
    ):
        await send(thirds[0])
        await registry.wait_until_idle(60)
        await until(lambda: _committed(group, len(thirds[0])), 30, "offsets committed")
        before = await committed_offsets(kafka_bootstrap, group)

        await private_postgres.stop()
        await send(thirds[1])  # arrives while the database is down
        await until(lambda: _at_least(retries(caplog), 3), 60, "the registry retried")
        assert consumer_alive(registry), "the registry stopped instead of waiting"
        assert await committed_offsets(kafka_bootstrap, group) == before

        await private_postgres.start()
        await send(thirds[2])
        await registry.wait_until_idle(90)
        assert consumer_alive(registry)
        await until(lambda: _committed(group, len(stream)), 30, "offsets committed")

    sessions, _history = await assert_equals_rebuild(kafka_bootstrap, topics, url, tmp_path)
    assert len(sessions) == 240


async def _at_least(value: int, floor: int) -> bool:
    return value >= floor
