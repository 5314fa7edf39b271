"""A session's creation is the one the broker appended first (on the real broker, both
backends).

Before 2026-12-06 the fold kept the creation dated earliest, so that any order of the records
gives the same row. A producer allowed on the events topic could then write a second
`session.created` of a live session, dated a second before the sign-in with a policy of one
second: it won, and the registry's sweeper expired (and signed the expiry of) a session the
platform served, out of every termination's reach. The broker's append time (the events topic
is `LogAppendTime`) is a moment no producer chooses, and it decides now.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from registry_helpers import (
    NOW,
    StartRegistry,
    created,
    read_topic,
    session_rows,
    sibling_database,
    sid,
    table_rows,
)

from read_model.tables import sessions
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.topics import Topics
from session_registry.service_layer.read_model_diff import diff_read_models
from session_registry.service_layer.rebuild import rebuild

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


async def test_a_creation_forged_after_the_sign_in_loses_and_the_session_stays_open(
    start_registry: StartRegistry,
    send: Send,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    registry = await start_registry()
    signed_in = NOW - timedelta(minutes=5)
    await send(created("live", at=signed_in))
    await registry.wait_until_idle(30)
    # a producer allowed on the events topic creates the session again, a second earlier and
    # for a second, on the session's own partition and on every other one
    key = record_key("acme", sid("live"))
    for partition in range(topics.partitions):
        forged = created(
            "live", at=signed_in - timedelta(seconds=1), max_s=1, idle_s=1, user="mallory"
        )
        await producer.send_and_wait(topics.events, encode(forged), key=key, partition=partition)
    await registry.wait_until_idle(30)
    assert (await registry.sweep_once(NOW)).expired == 0

    logged = await read_topic(kafka_bootstrap, topics.events)
    [genuine] = [r for r in logged if r.key == key and b'"user_id":"u1"' in r.value]
    appended = datetime.fromtimestamp(genuine.timestamp / 1000, UTC)
    row = (await session_rows(registry))[sid("live")]
    assert (row["state"], row["user_id"], row["max_session_seconds"]) == ("open", "u1", 86400)
    assert row["creation_appended_at"].replace(tzinfo=UTC) == appended
    assert row["expires_at"].replace(tzinfo=UTC) > NOW

    # a rebuild reads the log as the live registry did: the same row, append time included
    into, drop = await sibling_database(db_url, tmp_path)
    try:
        await rebuild(registry.settings, topics, into, "rebuild-contested")
        [rebuilt] = await table_rows(into, sessions, [sessions.c.session_id])
        differences = [d async for d in diff_read_models(db_url, into)]
    finally:
        await drop()
    assert (rebuilt["user_id"], rebuilt["state"]) == ("u1", "open")
    assert rebuilt["creation_appended_at"].replace(tzinfo=UTC) == appended
    assert differences == []
