"""The revocation watcher on a real broker: catch-up, following, tombstones, tenants, eviction."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer

from auth_gateway import GatewaySettings, SessionGateway
from session_contracts.kafka_admin import ensure_topics
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

Revoke = Callable[..., Awaitable[None]]
Eventually = Callable[..., Awaitable[float]]


def gateway_for(kafka_bootstrap: str, topics: Topics, **overrides: Any) -> SessionGateway:
    settings = GatewaySettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
        gateway_tenant_id="acme",
        **overrides,
    )
    return SessionGateway.from_settings(settings)


@contextlib.asynccontextmanager
async def running(gateway: SessionGateway, ready_within: float = 30) -> AsyncIterator[None]:
    await gateway.start()
    try:
        async with asyncio.timeout(ready_within):
            await gateway.wait_ready()
        yield
    finally:
        await gateway.stop()


async def test_catches_up_with_everything_published_before_start(
    kafka_bootstrap: str, topics: Topics, revoke: Revoke, producer: AIOKafkaProducer
) -> None:
    for n in range(300):
        await revoke(f"early-{n}")
    for n in range(40):
        await revoke(f"other-tenant-{n}", tenant_id="globex")
    for n in range(20):
        await revoke(f"early-{n}", tombstone=True)
    await revoke("already-over", valid_for=timedelta(minutes=-5))
    await producer.send_and_wait(topics.revocations, b"{not json", key=b"garbage")
    await producer.send_and_wait(topics.revocations, b'{"type": "session.revoked"}', key=b"bad")

    gateway = gateway_for(kafka_bootstrap, topics, gateway_eviction_grace_seconds=0)
    assert not gateway.ready
    async with running(gateway):
        assert gateway.ready
        assert len(gateway.table) == 280
        assert not gateway.is_revoked("early-0")
        assert gateway.is_revoked("early-20")
        assert gateway.is_revoked("early-299")
        assert not gateway.is_revoked("other-tenant-1")  # nothing crosses tenants
        assert not gateway.is_revoked("already-over")
        assert gateway.watcher.records_rejected == 2
        assert gateway.staleness_seconds < 5


async def test_follows_new_revocations_and_tombstones_after_start(
    kafka_bootstrap: str, topics: Topics, revoke: Revoke, eventually: Eventually
) -> None:
    gateway = gateway_for(kafka_bootstrap, topics)
    async with running(gateway):
        assert len(gateway.table) == 0
        await revoke("late")

        async def revoked() -> bool:
            return gateway.is_revoked("late")

        await eventually(revoked, within=10)  # how fast: bench.revocation, not a test
        await revoke("late", tombstone=True)

        async def forgotten() -> bool:
            return not gateway.is_revoked("late")

        await eventually(forgotten, within=5)
        assert len(gateway.table) == 0


async def test_entries_leave_memory_once_past_valid_until(
    kafka_bootstrap: str, topics: Topics, revoke: Revoke, eventually: Eventually
) -> None:
    gateway = gateway_for(kafka_bootstrap, topics, gateway_eviction_grace_seconds=0)
    async with running(gateway):
        await revoke("short-lived", valid_for=timedelta(seconds=2))
        await revoke("long-lived", valid_for=timedelta(hours=1))

        async def both_known() -> bool:
            return len(gateway.table) == 2

        await eventually(both_known, within=5)

        async def short_one_evicted() -> bool:
            return len(gateway.table) == 1

        await eventually(short_one_evicted, within=8)
        assert gateway.is_revoked("long-lived")
        assert not gateway.is_revoked("short-lived")


async def test_not_ready_until_the_topic_exists_and_was_read(
    kafka_bootstrap: str, topics: Topics
) -> None:
    missing = Topics(prefix=topics.prefix + "absent.", partitions=1)
    gateway = gateway_for(kafka_bootstrap, missing)
    await gateway.start()
    try:
        await asyncio.sleep(2)
        assert not gateway.ready
        await ensure_topics(kafka_bootstrap, missing)
        async with asyncio.timeout(20):
            await gateway.wait_ready()
    finally:
        await gateway.stop()
