"""A restarted gateway rebuilds its revocations from the compacted topic before admitting anyone.

A registry ends sessions (two terminate commands and a platform logout); a gateway follows the
revocations, is stopped, more sessions are ended while it is down, and a new gateway instance
(what a restarted process is: its table lives in memory) starts. Every request it answers
before it is ready is 503; a revoked session is never admitted, not even during start-up; once
ready it refuses exactly the revoked sessions and admits the others.
"""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import httpx
import pytest
from fault_support import (
    TENANT,
    gateway_on,
    gateway_status,
    producer_on,
    running_registry,
    send_models,
    until,
)
from registry_helpers import NOW, created, logout, read_topic

from session_contracts.handles import record_key, session_handle
from session_contracts.models import TerminateSessions
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka


def terminate(session_ids: list[str]) -> TerminateSessions:
    return TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id=TENANT,
        requested_by="admin-faults",
        session_ids=session_ids,
    )


async def test_restarted_gateway_rebuilds_revocations_before_admitting_traffic(
    kafka_bootstrap: str, topics: Topics, tmp_path: Path
) -> None:
    ids = [f"g-{n:03d}-credential" for n in range(80)]  # what clients present
    handle = {sid: session_handle(TENANT, sid) for sid in ids}  # what events name
    revoked_before, revoked_meanwhile = set(ids[:30]), set(ids[30:45]) | {ids[45]}
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"

    async with (
        producer_on(kafka_bootstrap) as producer,
        running_registry(kafka_bootstrap, topics, url) as registry,
    ):
        await send_models(producer, topics, *[created(sid, tenant=TENANT) for sid in ids])
        # A command ends the sessions the registry has read by then (docs/registry.md), as the
        # admin API only asks for sessions it lists: events and commands are separate topics,
        # so a command sent after the creations may be read before some of them.
        await registry.wait_until_idle(60)
        await send_models(producer, topics, terminate([handle[sid] for sid in ids[:30]]))
        await registry.wait_until_idle(60)

        gateway, client = gateway_on(kafka_bootstrap, topics)
        try:
            await gateway.start()
            async with asyncio.timeout(30):
                await gateway.wait_ready()
            await until(
                lambda: _refuses_exactly(client, ids, revoked_before), 30, "first gateway enforces"
            )
        finally:
            await gateway.stop()
            await client.aclose()

        # ended while no gateway runs: by an admin, and by the user logging out
        await send_models(
            producer,
            topics,
            terminate([handle[sid] for sid in ids[30:45]]),
            logout(ids[45], NOW, tenant=TENANT),
        )
        await registry.wait_until_idle(60)
    revoked = revoked_before | revoked_meanwhile
    records = await read_topic(kafka_bootstrap, topics.revocations)
    assert sorted(r.key for r in records) == sorted(record_key(TENANT, handle[s]) for s in revoked)

    gateway, client = gateway_on(kafka_bootstrap, topics)
    answers: list[tuple[bool, str, int, bool]] = []  # (ready before, session, status, ready after)
    try:
        answers.append((False, ids[0], await gateway_status(client, ids[0]), gateway.ready))
        await gateway.start()
        for _ in range(2000):  # probe revoked and live sessions all through start-up
            for sid in (ids[0], ids[44], ids[45], ids[79]):
                before = gateway.ready
                answers.append((before, sid, await gateway_status(client, sid), gateway.ready))
            if answers[-4][0]:  # a whole round was answered ready
                break
            await asyncio.sleep(0.005)
        assert gateway.ready, "the restarted gateway never became ready"
        await until(lambda: _refuses_exactly(client, ids, revoked), 10, "restarted gateway")
    finally:
        await gateway.stop()
        await client.aclose()

    admitted_revoked = [a for a in answers if a[1] in revoked and a[2] == 200]
    assert admitted_revoked == [], "a revoked session was admitted during start-up"
    assert all(status == 503 for _, _, status, after in answers if not after)
    refused_in_start_up = sum(status == 503 for _, _, status, _ in answers[1:])
    assert answers[0][2] == 503 and refused_in_start_up > 0
    for ready, sid, status, _ in answers:
        if ready:
            assert status == (401 if sid in revoked else 200), (sid, status)
    print(f"requests refused with 503 while the restarted gateway caught up: {refused_in_start_up}")


async def _refuses_exactly(client: httpx.AsyncClient, ids: list[str], revoked: set[str]) -> bool:
    for sid in ids:
        if (await gateway_status(client, sid) == 401) != (sid in revoked):
            return False
    return True
