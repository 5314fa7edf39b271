"""The broker goes away during ingestion and during a termination: nothing lost, nothing repeated.

Runs on a broker of the test's own (`private_kafka`), stopped while a registry ingests and the
admin API has just accepted a termination, and started again while more events and a second
termination wait in producers. Afterwards: the read model equals a rebuild from the log, every
termination was applied once (one `session.terminated` per session, the status endpoint, the
applied commands and the outbox agree), and a gateway that followed revocations across the
outage refuses exactly the terminated sessions. On SQLite and PostgreSQL.
"""

from __future__ import annotations

import asyncio
import uuid
from contextlib import AsyncExitStack
from datetime import timedelta
from functools import partial
from pathlib import Path

import httpx
import pytest
from fault_support import (
    TENANT,
    admin_headers,
    admin_settings,
    applied,
    assert_equals_rebuild,
    consumer_alive,
    event_log,
    gateway_on,
    gateway_status,
    handle,
    outbox_rows,
    producer_on,
    request_termination,
    running_registry,
    send_models,
    termination_status,
    terminations_by_command,
    until,
)
from registry_helpers import NOW, activity, created, read_topic

from admin_api.app import create_app
from asgi_served import served
from fresh_topics import connection
from private_services import PrivateKafka
from session_contracts.handles import record_key
from session_contracts.kafka_admin import ensure_topics
from session_contracts.models import SessionEvent
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]
SESSIONS = 120


async def test_broker_restart_during_ingestion_and_termination_loses_and_repeats_nothing(
    private_kafka: PrivateKafka, db_url: str, tmp_path: Path
) -> None:
    bootstrap = private_kafka.bootstrap
    topics = Topics(prefix=f"f{uuid.uuid4().hex[:8]}.", partitions=3)
    await ensure_topics(connection(bootstrap, topics))
    ids = [f"k-{n:03d}" for n in range(SESSIONS)]  # credentials: what clients present
    handles = [handle(sid) for sid in ids]  # what events, commands and rows name
    first: list[SessionEvent] = [created(sid, user=f"u{n % 7}") for n, sid in enumerate(ids[:80])]
    first += [activity(sid, NOW - timedelta(minutes=1)) for sid in ids[:80:3]]
    later: list[SessionEvent] = [created(sid) for sid in ids[80:]]
    later += [activity(sid, NOW - timedelta(seconds=30)) for sid in ids[:SESSIONS:2]]
    settings = admin_settings(bootstrap, topics, db_url)
    headers = admin_headers(settings)
    gateway, client = gateway_on(bootstrap, topics)

    async with AsyncExitStack() as stack:
        producer = await stack.enter_async_context(producer_on(bootstrap))
        registry = await stack.enter_async_context(running_registry(bootstrap, topics, db_url))
        admin = await stack.enter_async_context(served(create_app(settings)))
        stack.push_async_callback(client.aclose)
        stack.push_async_callback(gateway.stop)
        await gateway.start()
        await send_models(producer, topics, *first)
        await registry.wait_until_idle(60)
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        await until(lambda: _ready(admin), 30, "admin API connected to Kafka")

        # a termination accepted just before the broker goes down, and events on their way
        stack.push_async_callback(private_kafka.start)  # up again before anything stops
        first_command, _ = await request_termination(admin, headers, handles[:20])
        half = len(later) // 2
        stopping = asyncio.create_task(private_kafka.stop())
        streaming = [asyncio.create_task(send_models(producer, topics, *later[:half]))]
        await stopping
        first_applied_before_outage = first_command in await applied(db_url)
        streaming.append(asyncio.create_task(send_models(producer, topics, *later[half:])))
        # a second termination requested while the broker is down: it waits, or 503 and retried
        second = asyncio.create_task(request_termination(admin, headers, handles[20:40]))
        await until(lambda: _stale(gateway.staleness_seconds), 30, "the gateway saw the outage")
        assert not streaming[1].done() and not second.done()
        await private_kafka.start()

        await asyncio.wait_for(asyncio.gather(*streaming), 120)
        second_command, refused = await asyncio.wait_for(second, 120)
        for command_id in (first_command, second_command):
            await until(partial(_applied, admin, headers, command_id), 90, f"command {command_id}")
        await registry.wait_until_idle(90)
        assert consumer_alive(registry)

        ended = set(ids[:40])

        async def enforced() -> bool:
            for sid in ids:
                if (await gateway_status(client, sid) == 401) != (sid in ended):
                    return False
            return True

        await until(enforced, 60, "the gateway refuses exactly the terminated sessions")
        statuses = [
            await termination_status(admin, headers, c) for c in (first_command, second_command)
        ]
        await gateway.stop()  # sends the activity it noted; the registry reads it too
        await registry.wait_until_idle(60)

    assert [(s["status"], s["terminated"]) for s in statuses] == [("applied", 20)] * 2
    assert await applied(db_url) == {first_command: 20, second_command: 20}
    assert await outbox_rows(db_url) == 0
    log = await event_log(bootstrap, topics)
    by_command = terminations_by_command(log)
    assert by_command[first_command] == dict.fromkeys(handles[:20], 1)
    assert by_command[second_command] == dict.fromkeys(handles[20:40], 1)
    revocations = [r.key for r in await read_topic(bootstrap, topics.revocations)]
    # one revocation each, keyed <tenant>/<handle>: no credential on the topic
    assert sorted(revocations) == sorted(record_key(TENANT, handle(sid)) for sid in ended)
    sessions, _ = await assert_equals_rebuild(bootstrap, topics, db_url, tmp_path)
    assert len(sessions) == SESSIONS
    terminated = {sid for (t, sid), s in sessions.items() if s.state == "terminated"}
    assert terminated == {handle(sid) for sid in ended}
    assert all(t == TENANT for t, _ in sessions)
    print(
        f"first command applied before the broker stopped: {first_applied_before_outage}; "
        f"503s answered while it was down, then retried: {refused}"
    )


async def _ready(admin: httpx.AsyncClient) -> bool:
    return bool((await admin.get("/readyz")).json()["status"] == "ready")  # Kafka too, not degraded


async def _stale(seconds: float) -> bool:
    return seconds > 2


async def _applied(admin: httpx.AsyncClient, headers: dict[str, str], command_id: str) -> bool:
    return bool((await termination_status(admin, headers, command_id))["status"] == "applied")
