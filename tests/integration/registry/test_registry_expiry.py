"""The sweeper: sessions past `expires_at` expire by their own policy; old revocations tombstone."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from registry_helpers import (
    NOW,
    StartRegistry,
    activity,
    created,
    logout,
    read_topic,
    session_rows,
    sid,
    table_rows,
)

from read_model.tables import revocations, session_history
from session_contracts.handles import record_key
from session_contracts.topics import Topics
from session_registry.domain.lifecycle import EXPIRY_NAMESPACE

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


async def test_sweeper_expires_by_each_sessions_own_policy(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    registry = await start_registry(sweep_batch_size=2)  # several bounded batches
    start = NOW - timedelta(hours=1)
    await send(
        # idle after 10 minutes without activity
        created("idle-1", at=start, max_s=86400, idle_s=600),
        activity("idle-1", start + timedelta(minutes=5)),
        # at most 30 minutes long, however active
        created("long-1", at=start, max_s=1800, idle_s=3600),
        activity("long-1", start + timedelta(minutes=29)),
        # same timing under a longer policy (created before the settings changed): still open
        created("kept-1", at=start, max_s=86400, idle_s=7200),
        created("kept-2", at=start, max_s=86400, idle_s=7200),
        created("kept-3", at=start, max_s=86400, idle_s=7200),
    )
    await registry.wait_until_idle(30)
    outcome = await registry.sweep_once(NOW)
    assert outcome.expired == 2
    await registry.wait_until_idle(30)  # the expiry events come back through the log

    rows = await session_rows(registry)
    idle, long = rows[sid("idle-1")], rows[sid("long-1")]
    assert (idle["state"], idle["end_reason"]) == ("expired", "idle")
    assert (long["state"], long["end_reason"]) == ("expired", "max_length")
    assert {rows[sid(s)]["state"] for s in ("kept-1", "kept-2", "kept-3")} == {"open"}
    expiries = [
        r for r in await read_topic(kafka_bootstrap, topics.events) if b"session.expired" in r.value
    ]
    published = [json.loads(r.value) for r in expiries]
    assert {e["event_id"] for e in published} == {
        str(uuid.uuid5(EXPIRY_NAMESPACE, f"acme\x1f{sid(s)}")) for s in ("idle-1", "long-1")
    }
    assert {r.key for r in expiries} == {record_key("acme", sid(s)) for s in ("idle-1", "long-1")}
    history = await table_rows(db_url, session_history, [session_history.c.event_id])
    assert sum(h["type"] == "session.expired" for h in history) == 2

    # a second sweep finds nothing more to do
    assert (await registry.sweep_once(NOW)).expired == 0


async def test_revocations_are_tombstoned_after_valid_until(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    registry = await start_registry()
    await send(created("s1", max_s=3600), logout("s1", NOW - timedelta(minutes=1)))
    await registry.wait_until_idle(30)
    assert len(await table_rows(db_url, revocations, [revocations.c.session_id])) == 1

    assert (await registry.sweep_once(NOW)).tombstoned == 0  # still possibly valid
    outcome = await registry.sweep_once(NOW + timedelta(hours=2))
    assert outcome.tombstoned == 1
    records = await read_topic(kafka_bootstrap, topics.revocations)
    key = record_key("acme", sid("s1"))
    assert [(r.key, r.value is None) for r in records] == [(key, False), (key, True)]
    assert await table_rows(db_url, revocations, [revocations.c.session_id]) == []
