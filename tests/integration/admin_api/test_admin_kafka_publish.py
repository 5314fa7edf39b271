"""Termination commands and settings records reach a real Kafka broker, keyed per the contract."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from admin_api_support import TENANT, handle, make_settings
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.adapters import bus as bus_module
from admin_api.adapters.bus import KafkaBus
from admin_api.app import create_app
from admin_api.auth import issue_dev_token
from asgi_served import served
from fresh_topics import connection
from polling import until
from session_contracts.codec import decode_command
from session_contracts.handles import record_key
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka


@pytest.fixture
async def kafka_client(
    engine: AsyncEngine, db_url: str, kafka_bootstrap: str, topics: Topics
) -> AsyncIterator[tuple[httpx.AsyncClient, dict[str, str]]]:
    settings = make_settings(
        db_url,
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
    )
    app = create_app(settings)
    headers = {"Authorization": f"Bearer {issue_dev_token(settings, 'admin-7', TENANT)}"}
    async with served(app) as c:
        for _ in range(300):  # the producer connects in the background
            if (await c.get("/readyz")).json()["status"] == "ready":  # not degraded
                break
            await asyncio.sleep(0.1)
        else:
            raise AssertionError((await c.get("/readyz")).text)
        yield c, headers


async def consume(bootstrap: str, topic: str, count: int) -> list[Any]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    records: list[Any] = []
    try:
        async with asyncio.timeout(30):
            while len(records) < count:
                batch = await consumer.getmany(timeout_ms=500)
                for partition_records in batch.values():
                    records.extend(partition_records)
    finally:
        await consumer.stop()
    return records


async def test_termination_is_published_on_the_commands_topic_keyed_by_tenant_and_command_id(
    kafka_client: tuple[httpx.AsyncClient, dict[str, str]], kafka_bootstrap: str, topics: Topics
) -> None:
    client, headers = kafka_client
    s1, s2 = handle("s1"), handle("s2")
    by_ids = await client.post(
        "/api/v1/sessions/terminations", json={"session_ids": [s1, s2]}, headers=headers
    )
    by_filter = await client.post(
        "/api/v1/sessions/terminations",
        json={"filter": {"ip_address": "10.0.0.0/8", "q": "ada"}, "reason": "security"},
        headers=headers,
    )
    assert by_ids.status_code == 202 and by_filter.status_code == 202, by_filter.text
    records = await consume(kafka_bootstrap, topics.commands, 2)
    commands = {r.key: decode_command(r.value) for r in records}  # v2: b"<tenant>/<command_id>"
    first = commands[record_key(TENANT, by_ids.json()["command_id"])]
    assert first.tenant_id == TENANT and first.requested_by == "admin-7"
    assert first.session_ids == [s1, s2] and first.filter is None
    second = commands[record_key(TENANT, by_filter.json()["command_id"])]
    assert second.filter is not None and second.filter.ip_address == "10.0.0.0/8"
    assert second.reason == "security"
    status = await client.get(
        f"/api/v1/sessions/terminations/{by_ids.json()['command_id']}", headers=headers
    )
    assert status.json()["status"] == "pending"


async def test_settings_change_is_published_on_the_compacted_settings_topic(
    kafka_client: tuple[httpx.AsyncClient, dict[str, str]], kafka_bootstrap: str, topics: Topics
) -> None:
    client, headers = kafka_client
    change = {"max_session_seconds": 7 * 86400, "idle_timeout_seconds": 3600}
    response = await client.put("/api/v1/settings/sessions/mobile", json=change, headers=headers)
    assert response.status_code == 200, response.text
    (record,) = await consume(kafka_bootstrap, topics.settings, 1)
    assert record.key == TENANT.encode()
    body = json.loads(record.value)
    assert body["type"] == "session_settings.changed" and body["changed_by"] == "admin-7"
    assert body["settings"]["mobile"] == change
    assert body["settings"]["browser"]["idle_timeout_seconds"] == 8 * 3600


async def test_the_connected_bus_knows_the_partitions_of_the_topics_it_writes(
    kafka_bootstrap: str, topics: Topics
) -> None:
    """aiokafka's bootstrap learns no topic: a bus that did not learn its topics as it
    connected made the first termination wait a metadata round trip, and one sent once the
    broker had gone waited for metadata instead of in the producer."""
    bus = KafkaBus(connection(kafka_bootstrap, topics))
    bus.start()
    try:

        async def connected() -> bool:
            return bus.ready

        await until(connected, 30, "the bus connected")
        cluster = bus._producer.client.cluster  # type: ignore[union-attr]
        every = set(range(topics.partitions))
        assert cluster.partitions_for_topic(topics.commands) == every
        assert cluster.partitions_for_topic(topics.settings) == every
    finally:
        await bus.stop()


async def test_a_bus_stopped_while_it_connects_leaves_no_producer_running(
    kafka_bootstrap: str, topics: Topics, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The admin API stopping while its bus learns its topics' partitions (the producer
    started): the cancelled connection stopped nothing, and the producer's sender and metadata
    tasks ran on for the life of the process."""
    learning = asyncio.Event()
    started: list[AIOKafkaProducer] = []

    async def learn_for_ever(producer: AIOKafkaProducer, _topics: object) -> None:
        started.append(producer)
        learning.set()
        await asyncio.Event().wait()

    monkeypatch.setattr(bus_module, "learn_partitions", learn_for_ever)
    bus = KafkaBus(connection(kafka_bootstrap, topics))
    bus.start()
    async with asyncio.timeout(30):
        await learning.wait()
    (producer,) = started
    tasks = [producer.client._sync_task, producer._sender.sender_task]
    assert all(task is not None and not task.done() for task in tasks)
    await bus.stop()
    assert all(task is not None and task.done() for task in tasks)
    assert producer._closed
    assert not any(conn.connected() for conn in producer.client._conns.values())
