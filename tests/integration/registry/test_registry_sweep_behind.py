"""The sweeper does not expire on the clock while the registry is behind its records (on the
real broker, both backends).

A registry that was down, or is catching up, holds unread records; among them a session's
activity that moves its `expires_at` later. The sweeper used to run on the clock from the
start: it expired the session (final) before its activity was folded, and a termination read
afterwards passed over it as not active: the session, alive on the platform, was never
revoked. A sweep now runs as of a moment up to which every partition of the group is applied
(`ConsumerLoop.caught_up_at`), another instance's partitions included.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from registry_helpers import StartRegistry, activity, created, read_topic, session_rows, sid

from fresh_topics import connection
from polling import until
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_consumer, new_producer
from session_contracts.models import SessionEvent, TerminateSessions
from session_contracts.topics import Topics
from session_registry.adapters.positions import load_positions
from session_registry.service_layer.expiry import SweepOutcome

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


async def test_a_termination_read_before_the_sessions_latest_activity_ends_and_revokes_it(
    start_registry: StartRegistry,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    """The registry behind on the session's events partition has read the commands partition:
    by the activity it has read, the session passed its deadline minutes ago (more than the
    grace), and the command passed over it as not active; the activity read next carried it
    on, alive and never revoked (found by a review, 2026-12-06)."""
    now = datetime.now(UTC)
    # idle 5 minutes, created 10 minutes ago; the user was active a second ago, in a record
    # behind a backlog on the same partition
    alive = created("alive", at=now - timedelta(minutes=10), idle_s=300)
    records: list[SessionEvent] = [alive, *(created(f"other-{n}") for n in range(BACKLOG))]
    records.append(activity("alive", now - timedelta(seconds=1)))
    for event in records:
        await producer.send(
            topics.events, encode(event), key=record_key("acme", event.session_id), partition=0
        )
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=now,
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid("alive")],
    )
    await producer.send(
        topics.commands, encode(command), key=record_key("acme", str(command.command_id))
    )
    await producer.flush()
    # small fetches: the backlog takes many, and the command comes in the first
    registry = await start_registry(batch_max_records=50, max_partition_fetch_bytes=65536)
    await registry.wait_until_idle(60)
    rows = await session_rows(registry)
    assert rows[sid("alive")]["state"] == "terminated", rows[sid("alive")]
    revoked = [r.key for r in await read_topic(kafka_bootstrap, topics.revocations)]
    assert revoked == [record_key("acme", sid("alive"))]


async def test_an_instance_never_expires_a_session_whose_activity_another_member_has_not_applied(
    start_registry: StartRegistry,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Two instances in one group: the one caught up on its own partitions used to expire, on
    its clock, a session whose activity lay unapplied on the other's partition."""
    group = f"registry-{uuid.uuid4().hex[:8]}"
    start = datetime.now(UTC)
    clock = [start]  # the registry's clock: frozen until the activity below is sent
    registry = await start_registry(
        clock=lambda: clock[0],
        consumer_group=group,
        sweep_interval_seconds=0.02,
        activity_grace_seconds=0,
        registry_lag_refresh_seconds=0.05,
    )
    swept: list[datetime | None] = []
    sweep_once = registry.sweep_once

    async def recorded(now: datetime | None = None) -> SweepOutcome:
        swept.append(now)
        return await sweep_once(now)

    registry.sweep_once = recorded  # type: ignore[method-assign]
    # one session on each partition, idle 30 s, applied by the registry alone
    for p in range(topics.partitions):
        event = created(f"s{p}", at=start, idle_s=30)
        await producer.send(
            topics.events, encode(event), key=record_key("acme", event.session_id), partition=p
        )
    await producer.flush()
    await registry.wait_until_idle(30)

    # A second member that applies nothing: an instance stuck, or still catching up.
    stalled = new_consumer(
        connection(kafka_bootstrap),
        topics.events,
        topics.commands,
        group_id=group,
        enable_auto_commit=False,
    )
    await stalled.start()
    polling = asyncio.create_task(_fetch_and_drop(stalled))
    try:

        async def shared() -> bool:
            mine, its = registry.loop.consumer.assignment(), stalled.assignment()
            return bool(mine) and bool(its) and not mine & its

        await until(shared, 60, "the partitions shared by the registry and the stalled member")
        p = min(tp.partition for tp in stalled.assignment() if tp.topic == topics.events)
        stuck = sid(f"s{p}")
        await producer.send_and_wait(
            topics.events,
            encode(activity(f"s{p}", start + timedelta(seconds=10))),
            key=record_key("acme", stuck),
            partition=p,
        )
        clock[0] = start + timedelta(hours=1)  # every deadline passed on the registry's clock
        count = len(swept)

        async def swept_a_while() -> bool:
            return len(swept) >= count + 25

        await until(swept_a_while, 30, "25 sweeps")
        rows = await session_rows(registry)
        assert rows[stuck]["state"] == "open", (rows[stuck], max(m for m in swept if m))
        # what an operator sees: how far behind, and the partition the sweeps wait for
        detail = registry.ready().detail
        assert detail["sweeps_behind_seconds"] >= 3600 - 5
        assert detail["sweeps_wait_for"] == {
            "topic": topics.events,
            "partition": p,
            "applied": 1,
            "end": 2,
        }
        assert [
            r.getMessage()
            for r in caplog.records
            if r.getMessage().startswith("sweeps are ")
            and f"{topics.events} partition {p}, applied up to 1 of 2" in r.getMessage()
        ], "the warning naming the partition"
    finally:
        polling.cancel()
        await stalled.stop()

    # The stalled member leaves: the registry takes its partitions and applies the activity,
    # which moved the deadline, before it expires the session.
    async def expired() -> bool:
        rows = await session_rows(registry)
        return all(row["state"] == "expired" for row in rows.values())

    await until(expired, 60, "every session expired")
    rows = await session_rows(registry)
    assert _utc(rows[stuck]["ended_at"]) == start + timedelta(seconds=40)
    others = [row for key, row in rows.items() if key != stuck]
    assert {_utc(row["ended_at"]) for row in others} == {start + timedelta(seconds=30)}


async def test_a_partition_ending_in_a_transaction_marker_does_not_hold_the_sweeps(
    start_registry: StartRegistry,
    topics: Topics,
    kafka_bootstrap: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A producer writing in a Kafka transaction ends the partition with a commit marker,
    which is no record: the registry applied the partition up to the marker, one short of
    its end, and every sweep of the group waited for a record that might never come."""
    start = datetime.now(UTC)
    clock = [start]
    registry = await start_registry(
        clock=lambda: clock[0],
        sweep_interval_seconds=0.02,
        activity_grace_seconds=0,
        registry_lag_refresh_seconds=0.05,
    )
    transactional = new_producer(
        connection(kafka_bootstrap), transactional_id=f"tx-{uuid.uuid4().hex[:8]}"
    )
    await transactional.start()
    try:
        async with transactional.transaction():
            event = created("tx", at=start, idle_s=30)
            await transactional.send(
                topics.events, encode(event), key=record_key("acme", event.session_id), partition=0
            )
    finally:
        await transactional.stop()

    async def stepped_over() -> bool:
        # the record at 0, the marker at 1: stored past both, for the group's other instances
        async with registry.engine.connect() as conn:
            stored = await load_positions(conn, registry.settings.consumer_group, [topics.events])
        return stored.get((topics.events, 0)) == 2

    await until(stepped_over, 30, "the position stored past the marker")
    assert sid("tx") in await session_rows(registry)
    clock[0] = start + timedelta(hours=1)  # its deadline passed on the registry's clock

    async def expired() -> bool:
        return bool((await session_rows(registry))[sid("tx")]["state"] == "expired")

    await until(expired, 30, "the session expired")
    assert [
        r
        for r in caplog.records
        if r.levelname == "WARNING"
        and f"{topics.events} partition 0: no record to apply before offset 2" in r.getMessage()
    ]


async def _fetch_and_drop(consumer: AIOKafkaConsumer) -> None:
    while True:
        await consumer.getmany(timeout_ms=200)


def _utc(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
