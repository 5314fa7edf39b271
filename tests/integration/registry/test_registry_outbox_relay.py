"""The outbox relay on the real broker: batches per partition, the producer's own partitions.

The relay appends records to one batch per partition itself (no `send` per record), so it
must pick the partition `AIOKafkaProducer.send` would (murmur2 of the key: a session's events
from the demo services and from the registry land on one partition), keep each partition's
order, headers and tombstones, and delete exactly what it published.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from registry_helpers import read_topic

from fresh_topics import connection
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.kafka_clients import new_producer
from session_contracts.topics import Topics
from session_registry.adapters.outbox import OutboxRecord, OutboxRelay, add_to_outbox, outbox_size

pytestmark = pytest.mark.kafka


def outbox_records(topics: Topics, count: int) -> list[OutboxRecord]:
    """Events and revocations of `count` sessions, interleaved as a termination writes them,
    some with headers, and a tombstone; a few keys repeat (a partition's order matters)."""
    records: list[OutboxRecord] = []
    for n in range(count):
        key = f"acme/session-{n % (count // 3)}-{uuid.uuid4().hex[:6] if n % 5 else ''}".encode()
        records.append(OutboxRecord(topics.events, key, b'{"n": %d}' % n))
        headers = (("traceparent", b"00-%032x-%016x-01" % (n + 1, n + 1)),) if n % 4 == 0 else ()
        records.append(OutboxRecord(topics.revocations, key, b'{"r": %d}' % n, headers))
    records.append(OutboxRecord(topics.revocations, b"acme/session-0-", None))
    return records


async def test_the_relay_publishes_each_record_once_where_send_would_in_order(
    store: Store, topics: Topics, kafka_bootstrap: str
) -> None:
    records = outbox_records(topics, 90)
    async with UnitOfWork(store) as uow:
        await add_to_outbox(uow, records)
    producer = new_producer(connection(kafka_bootstrap), linger_ms=0, max_batch_size=2048)
    await producer.start()
    try:
        # chunks of 7 rows; 2 KB batches: several batches per partition and chunk
        assert await OutboxRelay(store, producer, chunk=7).relay() == len(records)
        # where `send` puts a key (the producer's own partitioner, asked per record)
        expected_partition = {
            (r.topic, r.key): producer._partition(r.topic, None, None, None, r.key, r.value)
            for r in records
        }
    finally:
        await producer.stop()
    async with store.engine.connect() as conn:
        assert await outbox_size(conn) == 0

    for topic in (topics.events, topics.revocations):
        published = await read_topic(kafka_bootstrap, topic)
        wanted = [r for r in records if r.topic == topic]
        assert len(published) == len(wanted)  # each once
        partitions_used = set()
        for record in published:
            assert record.partition == expected_partition[(topic, record.key)]
            partitions_used.add(record.partition)
        assert len(partitions_used) > 1
        for partition in partitions_used:  # each partition in outbox order
            got = [
                (r.key, r.value, tuple(r.headers))
                for r in sorted(published, key=lambda r: r.offset)
                if r.partition == partition
            ]
            want: list[Any] = [
                (r.key, r.value, r.headers)
                for r in wanted
                if expected_partition[(topic, r.key)] == partition
            ]
            assert got == want
    tombstones = [r for r in await read_topic(kafka_bootstrap, topics.revocations) if not r.value]
    assert [r.key for r in tombstones] == [b"acme/session-0-"]
