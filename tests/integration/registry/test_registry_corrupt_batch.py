"""A batch damaged where the broker keeps it (its CRC fails on the way out) holds its own
partition only, skips nothing, and flows on by itself once the broker serves it whole.

The broker checks every batch's CRC when a producer sends it, so a batch failing on the way
out was damaged on the broker's disk (or in a replica's copy). Before 2026-12-05 aiokafka
raised out of `getmany` at the first fetch of it, naming no offset: the registry's consumer
task died, and a restarted registry fetched it again and died again, for every tenant; the
records before it in the same fetch were never applied either. Runs on the test's OWN broker
(`private_kafka`), whose log segment it damages and mends in place. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import uuid

import pytest
from registry_helpers import created, read_topic, registry_settings, session_rows, sid

from fresh_topics import connection
from polling import until
from private_services import PrivateKafka, flip_bit
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_producer
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry

pytestmark = pytest.mark.kafka


async def test_a_batch_whose_crc_fails_holds_its_partition_only_and_flows_once_mended(
    private_kafka: PrivateKafka, db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    bootstrap = private_kafka.bootstrap
    topics = Topics(prefix=f"crc{uuid.uuid4().hex[:6]}.", partitions=3)
    await ensure_topics(connection(bootstrap, topics))
    producer = new_producer(connection(bootstrap))
    await producer.start()

    async def send(credential: str, partition: int) -> bytes:
        """A batch of its own; its event id (in its value only)."""
        event = created(credential)
        key = record_key("acme", event.session_id)
        await producer.send_and_wait(topics.events, encode(event), key=key, partition=partition)
        return str(event.event_id).encode()

    registry = Registry.from_settings(
        registry_settings(bootstrap, topics, db_url, held_partition_retry_seconds=0.5)
    )
    try:
        await send("before", 0)
        marker = await send("damaged", 0)
        await send("after", 0)
        await send("elsewhere", 1)
        segment = private_kafka.segment(topics.events, 0)
        damaged = flip_bit(segment, marker)

        await registry.start()

        async def applied(*credentials: str) -> bool:
            return {sid(c) for c in credentials} <= set(await session_rows(registry))

        # the batch before the damaged one, fetched with it, is applied; so is partition 1
        await until(lambda: applied("before", "elsewhere"), 30, "the readable records")
        held = registry.loop.held

        async def holding() -> bool:
            return bool(held)

        await until(holding, 30, "partition 0 held")
        (tp,) = held
        assert (tp.topic, tp.partition, held[tp].first, held[tp].last) == (topics.events, 0, 1, 1)
        # it goes on reading the other partitions, and the task is alive
        await send("while-held", 1)
        await send("while-held-2", 2)
        await until(lambda: applied("while-held", "while-held-2"), 30, "the other partitions")
        assert all(not task.done() for task in registry._tasks)
        rows = await session_rows(registry)
        assert sid("damaged") not in rows and sid("after") not in rows  # nothing skipped
        metrics = registry.metrics
        assert metrics is not None
        sample = metrics.registry.get_sample_value  # as a scrape reads them
        assert (sample("session_registry_corrupt_batches_total") or 0) >= 1
        assert sample("session_registry_partitions_held") == 1
        held_at = [{"topic": topics.events, "partition": 0, "at": 1}]
        assert registry.ready().detail["held"] == held_at
        errors = [r.getMessage() for r in caplog.records if r.levelname == "ERROR"]
        assert any(
            f"the batch at offsets 1 to 1 of {topics.events} partition 0 fails its CRC check"
            in line
            and "partition held" in line
            for line in errors
        ), errors

        flip_bit(segment, damaged)  # the broker serves it whole again (a replica mended)
        await until(lambda: applied("damaged", "after"), 30, "partition 0 after mending")
        await registry.wait_until_idle(30)
        assert not registry.loop.held
        assert sample("session_registry_partitions_held") == 0
        assert registry.ready().detail["held"] == []
        assert set(await session_rows(registry)) == {
            sid(c)
            for c in ("before", "damaged", "after", "elsewhere", "while-held", "while-held-2")
        }
        assert await read_topic(bootstrap, topics.dead_letters) == []
    finally:
        await producer.stop()
        await registry.stop()
