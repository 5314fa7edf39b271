"""Two registries in one consumer group share the partitions; rebalances lose and repeat nothing."""

from __future__ import annotations

import asyncio
import random
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiokafka import TopicPartition
from registry_helpers import (
    NOW,
    StartRegistry,
    activity,
    created,
    fold_records,
    read_topic,
    sid,
    table_rows,
)

from polling import until
from read_model.tables import applied_commands, session_history, sessions
from session_contracts.codec import decode_event
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_consumer
from session_contracts.models import TerminateSessions
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.partitions import topic_partitions
from session_registry.adapters.positions import load_positions
from session_registry.adapters.session_store import state_from_row
from session_registry.bootstrap import Registry
from session_registry.domain.state import SessionState
from session_registry.entrypoints import consumer as consumer_loop
from session_registry.workload import Workload, records

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


def expected_rows(log: list[Any]) -> dict[tuple[str, str], SessionState]:
    """The events topic's records folded in memory, in the log's order (`fold_records`: the
    registry's own fold, blind to a record applied twice)."""
    return fold_records(log)


def events_applied(registry: Registry) -> int:
    """How many events records the registry applied, of every type
    (`session_registry_events_applied`): counted once a batch commits, without the records
    below the stored positions it skipped (another member applied them), so a record two
    members both applied is counted twice."""
    assert registry.metrics is not None
    [counter] = registry.metrics.events_applied.collect()
    return int(sum(s.value for s in counter.samples if s.name.endswith("_total")))


async def holds_every_partition(registry: Registry, topics: Topics) -> None:
    """Wait until the registry was assigned every partition (idle is then idle on all of them).

    The survivor hears of the rebalance at its next heartbeat (every 3 s) and rejoins once its
    batch in flight has committed, which takes milliseconds here.
    """
    for _ in range(300):
        if len(registry.loop.consumer.assignment()) == 2 * topics.partitions:
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"still assigned {registry.loop.consumer.assignment()}")


async def test_rebalance_mid_stream_loses_and_repeats_nothing(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    stream = list(records(Workload(sessions=300, activity=8, tenants=1, seed=11)))
    chunks = [stream[i::3] for i in range(3)]  # interleaved: every chunk touches most sessions
    group = f"registry-{uuid.uuid4().hex[:8]}"
    first = await start_registry(consumer_group=group, batch_max_records=200)
    await send(*chunks[0], topic=topics.events)
    second = await start_registry(consumer_group=group, batch_max_records=200)  # rebalance
    await send(*chunks[1], topic=topics.events)
    for _ in range(200):  # both members hold partitions: the group really is shared
        if first.loop.consumer.assignment() and second.loop.consumer.assignment():
            break
        await asyncio.sleep(0.1)
    assert first.loop.consumer.assignment() and second.loop.consumer.assignment()
    await second.wait_until_idle(60)
    await first.wait_until_idle(60)
    so_far = await table_rows(db_url, sessions, [sessions.c.session_id])
    targets = [r["session_id"] for r in so_far if r["state"] == "open" and r["created_at"]][:5]
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="tenant-0",
        requested_by="admin-1",
        session_ids=targets,
    )
    await send(command)
    await asyncio.sleep(0.5)
    await first.stop()  # rebalance again: every partition to the second registry

    async def command_applied() -> bool:
        return bool(await table_rows(db_url, applied_commands, [applied_commands.c.command_id]))

    # The last chunk may end some of the targets (their logouts): sent before the command is
    # applied, a logout could land first, and the command would end 4. The events and commands
    # topics have no order between them, and a rebalance can hold a fetched command back.
    await until(command_applied, 60, "the command applied")
    await send(*chunks[2], topic=topics.events)
    await holds_every_partition(second, topics)
    await second.wait_until_idle(60)

    # the command's own terminations come back through the log too: fold the whole log
    logged = await read_topic(kafka_bootstrap, topics.events)
    log = [decode_event(r.value) for r in logged]
    expected = expected_rows(logged)
    stored = {
        (r["tenant_id"], r["session_id"]): state_from_row(r)
        for r in await table_rows(db_url, sessions, [sessions.c.tenant_id, sessions.c.session_id])
    }
    assert stored == expected
    assert len(expected) == 300
    # the fold shows nothing lost, but an event applied again folds to the same row: each
    # record applied by one registry exactly once, as the two counted them
    assert events_applied(first) + events_applied(second) == len(logged)
    history = await table_rows(db_url, session_history, [session_history.c.event_id])
    assert len(history) == len({e.event_id for e in log if e.type != "session.activity"})
    applied = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert [(a["command_id"], a["terminated"]) for a in applied] == [(str(command.command_id), 5)]
    by_command = [e for e in log if e.type == "session.terminated" and e.command_id is not None]
    # each published exactly once (Python's order: the database's collation may differ)
    assert sorted(e.session_id for e in by_command) == sorted(targets)


async def test_commands_during_rebalances_are_each_applied_once(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    names = [f"r-{n:03d}" for n in range(120)]  # the sessions' credentials
    ids = [sid(name) for name in names]  # their handles, as the admin list shows them
    commands = [
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW,
            tenant_id="acme",
            requested_by="admin-1",
            session_ids=ids[i : i + 5],
        )
        for i in range(0, 100, 5)
    ]
    group = f"registry-{uuid.uuid4().hex[:8]}"
    await send(*[created(name) for name in names])
    first = await start_registry(consumer_group=group, batch_max_records=10)
    await first.wait_until_idle(60)  # an admin ends sessions the registry has listed
    await send(*commands[:7])
    second = await start_registry(consumer_group=group, batch_max_records=10)  # joins
    await send(*commands[7:14])
    await send(*[activity(name, NOW) for name in names[100:]])
    for _ in range(200):
        if first.loop.consumer.assignment() and second.loop.consumer.assignment():
            break
        await asyncio.sleep(0.1)
    assert first.loop.consumer.assignment() and second.loop.consumer.assignment()
    await send(*commands[14:])
    await first.stop()  # leaves: every partition to the second registry
    await send(*commands[::4])  # the same commands again, as a retrying producer would
    await holds_every_partition(second, topics)
    await second.wait_until_idle(60)

    applied = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert {a["command_id"]: a["terminated"] for a in applied} == {
        str(c.command_id): 5 for c in commands
    }
    logged = await read_topic(kafka_bootstrap, topics.events)
    log = [decode_event(r.value) for r in logged]
    ended = sorted(e.session_id for e in log if e.type == "session.terminated")
    assert ended == sorted(ids[:100])  # one session.terminated each, none for the others
    stored = await table_rows(db_url, sessions, [sessions.c.session_id])
    terminated = [r["session_id"] for r in stored if r["state"] == "terminated"]
    assert sorted(terminated) == sorted(ids[:100])
    assert {(r["tenant_id"], r["session_id"]): state_from_row(r) for r in stored} == (
        expected_rows(logged)
    )


async def commit_group_offsets(bootstrap: str, group: str, topic: str) -> None:
    """Move `group`'s committed offsets on `topic` to its end (the group has no member)."""
    consumer = new_consumer(
        KafkaSettings(kafka_bootstrap_servers=bootstrap), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        partitions: list[TopicPartition] = await topic_partitions(consumer, topic)
        consumer.assign(partitions)
        await consumer.commit(await consumer.end_offsets(partitions))
    finally:
        await consumer.stop()


async def test_records_fetched_before_the_stored_positions_are_sought_are_not_applied(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The group's Kafka offsets ahead of the database's stored positions (a database restored
    # from a backup, or swapped for a rebuilt one that stopped earlier), and a listener slow
    # to read the stored positions: aiokafka fetches from the group's offsets meanwhile. Were
    # those records applied, the stored positions would move past records never applied.
    stream = list(records(Workload(sessions=120, activity=6, tenants=1, seed=5)))
    chunks = [stream[i::3] for i in range(3)]
    group = f"registry-{uuid.uuid4().hex[:8]}"
    first = await start_registry(consumer_group=group, batch_max_records=100)
    await send(*chunks[0], topic=topics.events)
    await first.wait_until_idle(60)
    await first.stop()  # the database's positions: the end of the first chunk
    await send(*chunks[1], topic=topics.events)
    await commit_group_offsets(kafka_bootstrap, group, topics.events)  # the group's: ahead
    await send(*chunks[2], topic=topics.events)

    async def slow_load_positions(*args: object, **kwargs: object) -> dict[tuple[str, int], int]:
        await asyncio.sleep(1.5)  # the third chunk is fetched from the group's offsets meanwhile
        return await load_positions(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(consumer_loop, "load_positions", slow_load_positions)
    second = await start_registry(consumer_group=group, batch_max_records=100)
    await holds_every_partition(second, topics)
    await second.wait_until_idle(60)

    logged = await read_topic(kafka_bootstrap, topics.events)
    stored = {
        (r["tenant_id"], r["session_id"]): state_from_row(r)
        for r in await table_rows(db_url, sessions, [sessions.c.tenant_id, sessions.c.session_id])
    }
    assert stored == expected_rows(logged)
    assert second.metrics is not None
    assert second.metrics.batches_dropped._value.get() >= 1


async def test_commands_racing_creations_on_two_registries_end_and_revoke_every_named_session(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    """Each command names one session by id and is sent just before or just after its
    creation, to two registries sharing the partitions: a command may be applied before its
    session's creation is read, by the other instance, or while the other one stores the
    creation (`test_registry_two_writers.py` holds those two writes' orders one by one). Every
    named session ends and is revoked once; the others stay open."""
    names = [f"race-{n:03d}" for n in range(80)]
    named = names[:60]
    group = f"registry-{uuid.uuid4().hex[:8]}"
    first = await start_registry(consumer_group=group, batch_max_records=5)
    second = await start_registry(consumer_group=group, batch_max_records=5)
    registries = (first, second)
    await until(
        lambda: _all_assigned(registries, topics), 60, "the partitions shared by both registries"
    )
    order = random.Random(7)
    for name in names:
        pair: list[object] = [created(name)]
        if name in named:
            pair.append(
                TerminateSessions(
                    command_id=uuid.uuid4(),
                    requested_at=NOW,
                    tenant_id="acme",
                    requested_by="admin-1",
                    session_ids=[sid(name)],
                )
            )
        order.shuffle(pair)
        await send(*pair)

    async def settled() -> bool:  # the events a command published, folded where they belong
        for registry in registries:
            await registry.wait_until_idle(60)
        stored = await table_rows(db_url, sessions, [sessions.c.session_id])
        return [r["state"] for r in stored].count("terminated") == len(named)

    await until(settled, 60, "every named session terminated")
    stored = await table_rows(db_url, sessions, [sessions.c.session_id])
    states = {r["session_id"]: (r["state"], r["created_at"] is not None) for r in stored}
    assert states == {
        sid(name): ("terminated" if name in named else "open", True) for name in names
    }
    revoked = [r.key for r in await read_topic(kafka_bootstrap, topics.revocations) if r.value]
    assert sorted(revoked) == sorted(record_key("acme", sid(name)) for name in named)


async def _all_assigned(registries: tuple[Registry, ...], topics: Topics) -> bool:
    held = [registry.loop.consumer.assignment() for registry in registries]
    return all(held) and sum(map(len, held)) == 2 * topics.partitions
