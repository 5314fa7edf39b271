"""The project's Kafka clients never ask a broker to create a topic they name.

aiokafka asks for a topic by name with `allow_auto_topic_creation` true, and a broker left at
Kafka's default (`auto.create.topics.enable=true`) then creates it: a gateway pointed at
another cluster, or under another topic prefix, found an empty revocations topic made for it
and called itself current (a review, stop 70). Another client in the same process (the host
service's own) asks as it did.
"""

from __future__ import annotations

import asyncio
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.client import ConnectionGroup
from aiokafka.errors import KafkaConnectionError
from aiokafka.protocol.metadata import MetadataRequest_v4

from session_contracts.kafka_clients import new_admin, new_consumer, new_producer
from session_contracts.settings import KafkaSettings


class _Refusing:
    """A connection that records each request and fails it."""

    def __init__(self, sent: list[Any]) -> None:
        self._sent = sent

    async def send(self, request: Any) -> Any:
        self._sent.append(request)
        raise KafkaConnectionError("not a broker")

    def close(self, **_: Any) -> Any:
        return asyncio.sleep(0)


async def _asks_to_create(client: Any) -> bool:
    """Whether `client`'s metadata request for a named topic allows creating it."""
    sent: list[Any] = []

    async def connection(*_: Any, **__: Any) -> _Refusing:
        return _Refusing(sent)

    client._conns[("bootstrap", ConnectionGroup.DEFAULT)] = _Refusing(sent)
    client._get_conn = connection
    await client._metadata_update(client.cluster, ["sessions.revocations"])
    [request] = sent
    return bool(request.build(MetadataRequest_v4).allow_auto_topic_creation)


async def test_no_client_of_the_project_asks_to_create_a_topic_and_others_ask_as_before() -> None:
    kafka = KafkaSettings(kafka_bootstrap_servers="127.0.0.1:1")
    consumer, producer, admin = new_consumer(kafka), new_producer(kafka), new_admin(kafka)
    theirs = AIOKafkaConsumer(bootstrap_servers="127.0.0.1:1")
    try:
        for ours in (consumer._client, producer.client, admin._client):
            assert not await _asks_to_create(ours)
        assert await _asks_to_create(theirs._client)  # the host's own client: unchanged
    finally:
        await consumer.stop()
        await producer.stop()
        await admin.close()
        await theirs.stop()
