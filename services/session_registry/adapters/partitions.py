"""The partitions of a topic, as the broker knows them."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition


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
