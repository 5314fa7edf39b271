"""A test's own topics on the shared broker: created under a fresh prefix, deleted afterwards.

`session_contracts.kafka_admin.ensure_topics` lists every topic on the broker first, to create
only the missing ones. On the shared test broker that list is what every test run left behind
(thousands of topics: about a second per call on a loaded machine, for each of a thousand
tests). A fresh prefix has no topics yet, so these create them at once (the same specs); and
deleting them after the test keeps the broker, and every full metadata read of it, small.
`read_records` reads back everything a topic holds.
"""

from __future__ import annotations

from typing import Any

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import for_code

from session_contracts.kafka_admin import delete_topics
from session_contracts.kafka_clients import new_consumer
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.partitions import topic_partitions


async def create(
    bootstrap: str, topics: Topics, changed: dict[str, dict[str, str]] | None = None
) -> None:
    """Create every topic of `topics` (none may exist yet) with its contract settings, but for
    the settings `changed` gives a topic (by name)."""
    changed = changed or {}
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=15_000)
    await admin.start()
    try:
        response = await admin.create_topics(
            [
                NewTopic(
                    s.name, s.partitions, 1, topic_configs={**s.config, **changed.get(s.name, {})}
                )
                for s in topics.specs()
            ]
        )
        for name, code, *_ in response.topic_errors:
            if code:
                raise for_code(code)(f"creating topic {name}")
    finally:
        await admin.close()


async def delete(bootstrap: str, topics: Topics) -> None:
    """Delete every topic of `topics` (the broker removes their logs in the background)."""
    await delete_topics(connection(bootstrap), topics)


def connection(bootstrap: str, topics: Topics | None = None) -> KafkaSettings:
    """KafkaSettings for a plain test broker (and these topics' prefix and partitions)."""
    topics = topics or Topics()
    return KafkaSettings(
        kafka_bootstrap_servers=bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
    )


async def read_records(bootstrap: str | KafkaSettings, topic: str) -> list[Any]:
    """Every record of a topic, up to its end offsets now (aiokafka ConsumerRecords); on a
    plain broker's address, or with the security of `KafkaSettings`."""
    kafka = (
        bootstrap
        if isinstance(bootstrap, KafkaSettings)
        else KafkaSettings(kafka_bootstrap_servers=bootstrap)
    )
    consumer = new_consumer(kafka)
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        found: list[Any] = []
        while any([await consumer.position(tp) < end for tp, end in ends.items()]):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                found.extend(records)
        return found
    finally:
        await consumer.stop()
