"""The sweeper does not expire on the clock while the registry is behind its records (on the
real broker, both backends).

A registry that was down, or is catching up, holds unread records; among them a session's
activity that moves its `expires_at` later. The sweeper used to run on the clock from the
start: it expired the session (final) before its activity was folded, and a termination read
afterwards passed over it as not active: the session, alive on the platform, was never
revoked. A sweep now waits until the registry is caught up (`ready()`: assignment received,
every end known, lag within `SESSIONS_REGISTRY_READY_MAX_LAG`).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from registry_helpers import StartRegistry, activity, created, read_topic, session_rows, sid

from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import SessionEvent, TerminateSessions
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka
BACKLOG = 3000


async def test_a_session_whose_activity_is_unread_is_not_expired_and_a_later_termination_revokes_it(
    start_registry: StartRegistry,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    now = datetime.now(UTC)
    # idle 30 s, created a minute ago: its deadline passed half a minute ago, but it was
    # active a second ago, in a record behind a backlog on the same partition
    alive = created("alive", at=now - timedelta(seconds=60), idle_s=30)
    records: list[SessionEvent] = [alive, *(created(f"other-{n}") for n in range(BACKLOG))]
    records.append(activity("alive", now - timedelta(seconds=1)))
    for event in records:
        await producer.send(
            topics.events, encode(event), key=record_key("acme", event.session_id), partition=0
        )
    await producer.flush()

    registry = await start_registry(
        sweep_interval_seconds=0.02,
        activity_grace_seconds=0,
        batch_max_records=50,
        registry_lag_refresh_seconds=0.05,
    )
    await registry.wait_until_idle(60)
    row = (await session_rows(registry))[sid("alive")]
    assert row["state"] == "open", row
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=datetime.now(UTC),
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid("alive")],
    )
    await producer.send_and_wait(
        topics.commands, encode(command), key=record_key("acme", str(command.command_id))
    )
    await registry.wait_until_idle(30)
    assert (await session_rows(registry))[sid("alive")]["state"] == "terminated"
    revoked = [r.key for r in await read_topic(kafka_bootstrap, topics.revocations)]
    assert revoked == [record_key("acme", sid("alive"))]
