"""Fixtures of the registry's integration tests: a producer, and registries on real Kafka."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from registry_helpers import StartRegistry, registry_settings

from fresh_topics import connection
from migrated import MigratedCopies
from read_model.database import open_store
from read_model.store import Store
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_producer
from session_contracts.topics import Topics
from session_registry.bootstrap import Clock, Registry, utc_now


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer for test records."""
    client = new_producer(connection(kafka_bootstrap))
    await client.start()
    try:
        yield client
    finally:
        await client.stop()


@pytest.fixture
def send(producer: AIOKafkaProducer, topics: Topics) -> Callable[..., Awaitable[None]]:
    """Send contract models or raw (key, value) records.

    Models are keyed as contract v2 keys them: `<tenant_id>/<handle>` (events, revocations) or
    `<tenant_id>/<command_id>` (commands).
    """

    async def _send(*messages: Any, topic: str | None = None, headers: Any = None) -> None:
        for message in messages:
            if isinstance(message, tuple):
                key, value = message
            elif hasattr(message, "command_id") and hasattr(message, "requested_by"):
                key = record_key(message.tenant_id, str(message.command_id))
                value = encode(message)
            else:
                key, value = record_key(message.tenant_id, message.session_id), encode(message)
            target = topic or (
                topics.commands if hasattr(message, "requested_by") else topics.events
            )
            await producer.send_and_wait(target, value, key=key, headers=headers)

    return _send


@pytest.fixture
async def store(db_url: str, migrated: MigratedCopies) -> AsyncIterator[Store]:
    """The test's database, migrated to head (closed afterwards)."""
    await migrated.migrate(db_url)
    store = open_store(db_url)
    yield store
    await store.dispose()


@pytest.fixture
async def start_registry(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> AsyncIterator[StartRegistry]:
    """Start registries on the test's topics and database; all are stopped afterwards."""
    started: list[Registry] = []

    async def _start(clock: Clock = utc_now, **overrides: Any) -> Registry:
        registry = Registry.from_settings(
            registry_settings(kafka_bootstrap, topics, db_url, **overrides), clock=clock
        )
        started.append(registry)  # first: a start that fails is stopped too
        await registry.start()
        return registry

    try:
        yield _start
    finally:
        for registry in reversed(started):
            await registry.stop()
