"""A topic's partitions on the real broker (`adapters.partitions.topic_partitions`, used by
`status`, `rebuild` and the SRE tools): a topic created while it is looked for is found, and
one that does not exist is named once the wait is over, asked for every 0.2 s meanwhile (it
was asked 50 times, about 14 s, before a mistyped topic prefix was reported)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from fresh_topics import connection
from polling import until
from session_contracts.kafka_clients import new_consumer
from session_registry.adapters.partitions import topic_partitions

pytestmark = pytest.mark.kafka


@pytest.fixture
async def asking(kafka_bootstrap: str) -> AsyncIterator[tuple[AIOKafkaConsumer, list[Any]]]:
    """A started consumer, and a list that grows by one each time it asks for all metadata."""
    consumer = new_consumer(connection(kafka_bootstrap))
    await consumer.start()
    client: Any = consumer._client
    fetch, asked = client.fetch_all_metadata, []

    async def counted() -> Any:
        asked.append(1)
        return await fetch()

    client.fetch_all_metadata = counted
    try:
        yield consumer, asked
    finally:
        await consumer.stop()


async def test_a_topic_created_while_it_is_looked_for_is_found(
    kafka_bootstrap: str, asking: tuple[AIOKafkaConsumer, list[Any]]
) -> None:
    consumer, asked = asking
    name = f"lookup-{uuid.uuid4().hex[:10]}"
    looking = asyncio.create_task(topic_partitions(consumer, name, wait=120))

    async def asked_twice() -> bool:
        return len(asked) >= 2

    await until(asked_twice, 30, "the topic asked for twice")
    assert not looking.done()
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka_bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(name, 2, 1)])
        try:
            assert [(tp.topic, tp.partition) for tp in await looking] == [(name, 0), (name, 1)]
        finally:
            await admin.delete_topics([name])
    finally:
        await admin.close()


async def test_a_missing_topic_is_named_once_the_wait_is_over(
    asking: tuple[AIOKafkaConsumer, list[Any]],
) -> None:
    consumer, asked = asking
    name = f"missing-{uuid.uuid4().hex[:10]}"
    with pytest.raises(LookupError, match=f"topic '{name}' not found on the broker"):
        await topic_partitions(consumer, name, wait=0.5)
    assert 1 <= len(asked) <= 4  # at once, then every 0.2 s until 0.5 s have passed
