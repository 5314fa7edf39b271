"""`session-registry events`: one session's records, from the one partition its key maps to."""

from __future__ import annotations

import asyncio
import json
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from registry_helpers import NOW, StartRegistry, activity, created, logout, read_topic, sid
from sre_cli import CLI_TIMEOUT, cli, cli_env

from fresh_topics import connection
from session_contracts.handles import record_key
from session_contracts.models import SessionEvent
from session_contracts.topics import Topics
from session_registry.service_layer.session_log import session_records

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


async def test_events_prints_the_sessions_records_from_its_partition_only(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
) -> None:
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(consumer_group=group)
    mine: list[SessionEvent] = [
        created("s1"),
        activity("s1", NOW - timedelta(minutes=1)),
        logout("s1", NOW),
    ]
    others = [created(f"other-{n}") for n in range(30)]
    await send(*others[:15], mine[0], *others[15:], mine[1], mine[2])
    await registry.wait_until_idle(60)
    env = cli_env(kafka_bootstrap, topics, db_url, group)

    done = await cli(env, "events", "--tenant", "acme", "--session", sid("s1"), "--json")

    printed = done.lines()
    assert [p["record"]["event_id"] for p in printed] == [str(e.event_id) for e in mine]
    assert [p["record"]["type"] for p in printed] == [e.type for e in mine]
    key = record_key("acme", sid("s1"))
    on_the_log = [r for r in await read_topic(kafka_bootstrap, topics.events) if r.key == key]
    assert [(p["partition"], p["offset"]) for p in printed] == [
        (r.partition, r.offset) for r in on_the_log
    ]
    assert all(p["key"] == key.decode() and p["timestamp"].endswith("+00:00") for p in printed)
    assert done.err == ""  # piped: no progress bar

    # not a full scan: what it read is the size of that one partition
    reports: list[tuple[int, int]] = []
    found = [
        r
        async for r in session_records(
            connection(kafka_bootstrap),
            topics,
            "acme",
            sid("s1"),
            report=lambda d, t: reports.append((d, t)),
        )
    ]
    assert len(found) == 3
    everything = await read_topic(kafka_bootstrap, topics.events)
    partition = on_the_log[0].partition
    in_partition = sum(1 for r in everything if r.partition == partition)
    assert reports[-1] == (in_partition, in_partition) and in_partition < len(everything)

    # another tenant's session of the same credential is another key: nothing printed
    other_tenant = await cli(env, "events", "--tenant", "beta", "--session", sid("s1"), "--json")
    assert other_tenant.lines() == []


async def test_events_follow_keeps_printing_new_records(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
) -> None:
    group = f"registry-{uuid.uuid4().hex[:8]}"
    await start_registry(consumer_group=group)
    await send(created("s1"))
    env = cli_env(kafka_bootstrap, topics, db_url, group)
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "session_registry",
        "events",
        "--tenant",
        "acme",
        "--session",
        sid("s1"),
        "--follow",
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None
    try:
        first = json.loads(await asyncio.wait_for(process.stdout.readline(), CLI_TIMEOUT))
        assert first["record"]["type"] == "session.created"
        later = activity("s1", NOW)
        await send(created("someone-else"), later)
        second = json.loads(await asyncio.wait_for(process.stdout.readline(), CLI_TIMEOUT))
        assert second["record"]["event_id"] == str(later.event_id)
        assert second["offset"] > first["offset"]
        assert process.returncode is None  # still following
    finally:
        process.terminate()
        await process.wait()


async def test_events_refuses_what_is_not_a_handle(
    topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    env = cli_env(kafka_bootstrap, topics, db_url, "unused")
    done = await cli(env, "events", "--tenant", "acme", "--session", "a-credential", code=2)
    assert "is not a session handle" in done.err and "Traceback" not in done.err
    done = await cli(
        env, "events", "--tenant", "acme", "--session", sid("s1"), "--since", "yesterday", code=2
    )
    assert "not an ISO 8601 time" in done.err
