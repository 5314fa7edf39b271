"""ConsumerLoop without a broker: a fake consumer delivers, rebalances; the database fails.

Every test checks the loop's promise on a SQLite read model: each record applied exactly once
(the ids of every committed batch are recorded, since idempotent merges would hide a double
application in the rows), nothing lost, rows equal to the pure fold of the log, positions at
the log's end. `hotloop_fakes` says what the fake consumer mimics of aiokafka.
"""

from __future__ import annotations

import asyncio
import itertools
import sqlite3
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from hotloop_fakes import (
    NOW,
    TOPICS,
    FakeConsumer,
    FakeLog,
    RecordingIngestor,
    Run,
    event_ids,
    expected_sessions,
    group_rebalance,
    migrated_store,
    session_states,
    start_loop,
    stored_positions,
    wait_for,
)
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from read_model.store import Store
from session_contracts.codec import COMMANDS, EVENTS, decode, encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import TerminateSessions
from session_registry.adapters import positions as positions_module
from session_registry.entrypoints import consumer as consumer_module
from session_registry.service_layer.ingest import IngestOutcome
from session_registry.workload import Workload, records

E0, E1, E2 = (TopicPartition(TOPICS.events, n) for n in range(3))
C0 = TopicPartition(TOPICS.commands, 0)
Positions = dict[tuple[str, int], int]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await migrated_store(tmp_path)
    yield store
    await store.dispose()


@pytest.fixture
def engine(store: Store) -> AsyncEngine:
    return store.engine


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch: pytest.MonkeyPatch) -> None:
    """The loop waits a second before retrying a failed batch; here a hundredth."""
    monkeypatch.setattr(consumer_module, "RETRY_FIRST_SECONDS", 0.01)
    monkeypatch.setattr(consumer_module, "RETRY_MAX_SECONDS", 0.04)


def workload(*, sessions: int = 30, seed: int = 7, prefix: str = "tenant-") -> Workload:
    """Event ids unique per record (no duplicates), so an id applied twice is a double apply."""
    return Workload(
        sessions=sessions, activity=5, duplicate_share=0.0, seed=seed, tenant_prefix=prefix
    )


def key(tp: TopicPartition) -> tuple[str, int]:
    return (tp.topic, tp.partition)


def merged(outcomes: list[IngestOutcome]) -> Positions:
    """The positions stored after these batches (a stored position only grows)."""
    positions: Positions = {}
    for outcome in outcomes:
        for tp, offset in outcome.positions.items():
            positions[tp] = max(offset, positions.get(tp, 0))
    return positions


def all_settled(run: Run, log: FakeLog) -> Callable[[], bool]:
    """Whether the loop committed and settled (Kafka offsets, after_batch) the whole log."""
    return lambda: merged(run.settled) == log.ends()


def consumed(engine: AsyncEngine, log: FakeLog) -> Callable[[], Awaitable[bool]]:
    """Whether the stored positions reached the log's end."""

    async def check() -> bool:
        return await stored_positions(engine) == log.ends()

    return check


async def assert_exactly_once(
    engine: AsyncEngine, log: FakeLog, *ingestors: RecordingIngestor
) -> None:
    """Every record of the log applied once by one of the ingestors; rows and positions follow."""
    everything = log.all_records()
    events = [r.value for r in everything if r.topic == TOPICS.events]
    expected = event_ids(events) + Counter(
        str(decode(COMMANDS, r.value).command_id) for r in everything if r.topic == TOPICS.commands
    )
    applied = Counter(ident for ingestor in ingestors for ident in ingestor.applied)
    assert {i: n for i, n in applied.items() if n > 1} == {}, "applied twice"
    assert sorted(expected - applied) == [], "never applied"
    assert applied == expected
    states, expected_states = await session_states(engine), expected_sessions(events)
    assert {key: states.get(key) for key in expected_states} == expected_states
    # a command naming a session no event names keeps its end for a creation to come
    assert all(
        not state.created and state.state == "terminated"
        for key, state in states.items()
        if key not in expected_states
    )
    assert await stored_positions(engine) == log.ends()


async def test_batches_are_applied_once_with_positions_stored_and_copied_to_kafka(
    store: Store,
    engine: AsyncEngine,
) -> None:
    log = FakeLog()
    log.extend_events(workload())
    ghost = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="tenant-0",
        requested_by="admin-1",
        session_ids=[session_handle("tenant-0", "no-such-session")],
    )
    log.append(TOPICS.commands, 0, encode(ghost), record_key("tenant-0", str(ghost.command_id)))
    consumer = FakeConsumer(log)
    run = await start_loop(store, consumer, {E0, E1, C0})
    # nothing stored yet: every partition starts at its beginning, before anything is fetched
    assert sorted(consumer.seeks) == sorted((tp, None) for tp in (E0, E1, C0))
    assert consumer.polls == 0
    try:
        await wait_for(all_settled(run, log))
        polls = consumer.polls
        await wait_for(lambda: consumer.polls >= polls + 3)  # polls that return nothing
        assert not run.task.done()
        assert len(consumer.batches) == len(run.settled)
        log.extend_events(workload(seed=8, prefix="later-"))  # the stream goes on after them
        await wait_for(all_settled(run, log))
    finally:
        await run.stop()
    assert consumer.open_polls == 0  # the poll in flight at the stop was cancelled

    await assert_exactly_once(engine, log, run.ingestor)
    ghost_row = (await session_states(engine))[
        ("tenant-0", session_handle("tenant-0", "no-such-session"))
    ]
    assert (ghost_row.created, ghost_row.state) == (False, "terminated")
    event_records = [r for r in log.all_records() if r.topic == TOPICS.events]
    assert len(run.settled) > 10  # many batches of at most 25 records
    assert sum(o.events for o in run.settled) == len(event_records)
    assert sum(o.commands for o in run.settled) == 1
    assert sum(o.skipped for o in run.settled) == 0
    # Kafka's copy: after every batch the partitions it moved, at the positions it stored
    kafka: dict[TopicPartition, int] = {}
    for offsets in consumer.commits:
        kafka.update(offsets)
    assert {key(tp): offset for tp, offset in kafka.items()} == log.ends()
    assert consumer.refused == [] and consumer.listener_errors == []


async def test_a_restarted_loop_seeks_to_the_stored_positions_not_to_kafkas(
    store: Store,
    engine: AsyncEngine,
) -> None:
    log = FakeLog()
    log.extend_events(workload())
    first = FakeConsumer(log, name="first")
    run1 = await start_loop(store, first, {E0, E1})
    await wait_for(all_settled(run1, log))
    await run1.stop()

    later = log.extend_events(workload(seed=8, prefix="later-"))
    log.committed = {E0: 3, E1: 0}  # Kafka's copy is best effort: here it lags
    stored = await stored_positions(engine)
    second = FakeConsumer(log, name="second")
    run2 = await start_loop(store, second, {E0, E1})
    assert sorted(second.seeks) == sorted((tp, stored[key(tp)]) for tp in (E0, E1))
    try:
        await wait_for(all_settled(run2, log))
    finally:
        await run2.stop()

    assert Counter(run2.ingestor.applied) == event_ids(r.value for r in later)
    assert sum(o.skipped for o in run2.settled) == 0  # nothing before the stored positions read
    await assert_exactly_once(engine, log, run1.ingestor, run2.ingestor)


async def test_a_revocation_waits_for_the_batch_in_flight_then_seeks_to_stored_positions(
    store: Store,
    engine: AsyncEngine,
) -> None:
    log = FakeLog()
    log.extend_events(workload(sessions=40), partitions=3)
    consumer = FakeConsumer(log)
    run = await start_loop(store, consumer, {E0, E1})
    seen: dict[str, Any] = {}
    rebalancing: list[asyncio.Task[None]] = []

    async def rebalance() -> None:
        await consumer.revoke_all()
        seen["committed at revoke"] = len(run.ingestor.outcomes)
        seen["stored at revoke"] = await stored_positions(engine)
        async with run.loop.gate:  # no batch commits between this read and the listener's seeks
            seen["stored"] = await stored_positions(engine)
            before = len(consumer.seeks)
            await consumer.assign({E0, E1, E2})  # kept two, gained one
            seen["seeks"] = consumer.seeks[before:]

    async def mid_batch() -> None:  # batch 3 has written its rows and not yet committed
        rebalancing.append(asyncio.create_task(rebalance()))
        await wait_for(lambda: consumer.revokes_started == 2)
        await asyncio.sleep(0.05)  # a revocation that did not wait would be over by now

    run.ingestor.projector.during[3] = mid_batch
    try:
        await wait_for(all_settled(run, log))
        await rebalancing[0]
    finally:
        await run.stop()

    # the revocation returned only once batch 3 had committed, its positions with it
    assert seen["committed at revoke"] == 3
    assert seen["stored at revoke"] == merged(run.ingestor.outcomes[:3])
    # the assignment sought every partition to its stored position (none yet: the beginning)
    stored = seen["stored"]
    assert stored[key(E0)] > 0 and stored[key(E1)] > 0 and key(E2) not in stored
    assert sorted(seen["seeks"]) == sorted(
        [(E0, stored[key(E0)]), (E1, stored[key(E1)]), (E2, None)]
    )
    # what the loop held from before the rebalance was fetched again from there: fenced
    await assert_exactly_once(engine, log, run.ingestor)
    assert consumer.refused == [] and consumer.listener_errors == []


async def e1_moving_mid_batch(
    store: Store, log: FakeLog
) -> tuple[Run, Run, list[asyncio.Task[None]]]:
    """Two registries of a group over `log`: a with E0 and E1, b with nothing yet; during a's
    third batch a rebalance (the task in the list) gives E1 to b."""
    a, b = FakeConsumer(log, name="a"), FakeConsumer(log, name="b")
    run_a = await start_loop(store, a, {E0, E1})
    run_b = await start_loop(store, b, set())  # in the group, nothing assigned yet
    moving: list[asyncio.Task[None]] = []

    async def mid_batch() -> None:
        moving.append(asyncio.create_task(group_rebalance({a: {E0}, b: {E1}})))
        await wait_for(lambda: a.revokes_started == 2)
        await asyncio.sleep(0.05)

    run_a.ingestor.projector.during[3] = mid_batch
    return run_a, run_b, moving


async def test_a_partition_moving_to_another_registry_mid_batch_is_applied_once(
    store: Store,
    engine: AsyncEngine,
) -> None:
    log = FakeLog()
    log.extend_events(workload(sessions=40))
    run_a, run_b, moving = await e1_moving_mid_batch(store, log)
    a, b = run_a.consumer, run_b.consumer
    try:
        await wait_for(consumed(engine, log))
        await moving[0]
        await wait_for(lambda: merged(run_a.settled).get(key(E0)) == log.ends()[key(E0)])
        await wait_for(lambda: merged(run_b.settled).get(key(E1)) == log.ends()[key(E1)])
    finally:
        await run_a.stop()
        await run_b.stop()

    await assert_exactly_once(engine, log, run_a.ingestor, run_b.ingestor)
    moved = {str(decode(EVENTS, r.value).event_id) for r in log.partitions[E1]}
    assert run_b.ingestor.applied and set(run_b.ingestor.applied) <= moved
    # a neither sought nor committed E1 once it was b's; b committed only E1
    assert a.refused == [] and b.refused == []
    assert all(set(offsets) == {E1} for offsets in b.commits)
    assert a.listener_errors == [] and b.listener_errors == []


async def test_transaction_markers_are_stepped_over_and_a_partition_moving_loses_nothing(
    store: Store,
    engine: AsyncEngine,
) -> None:
    """A producer writing Kafka transactions leaves markers among its records and at the end
    of a partition: offsets holding no record. The loop stores positions past them (the sweeps
    wait for every partition to be applied up to its end), and never past a record it has not
    applied, while a rebalance moves a partition mid-batch."""
    log = FakeLog()
    for n, (k, v) in enumerate(records(workload(sessions=40))):
        partition = zlib.crc32(k) % 2
        log.append(TOPICS.events, partition, v, k)
        if n % 7 == 0:
            log.append_marker(TopicPartition(TOPICS.events, partition))
    log.append_marker(E0)
    log.append_marker(E1)
    run_a, run_b, moving = await e1_moving_mid_batch(store, log)
    a, b = run_a.consumer, run_b.consumer
    try:
        await wait_for(consumed(engine, log))
        await moving[0]
        await wait_for(consumed(engine, log))
    finally:
        await run_a.stop()
        await run_b.stop()

    await assert_exactly_once(engine, log, run_a.ingestor, run_b.ingestor)
    assert a.refused == [] and b.refused == []
    # the group's offsets follow, for the lag tools
    assert log.committed == {E0: log.ends()[key(E0)], E1: log.ends()[key(E1)]}


@pytest.mark.parametrize(
    "failure",
    [
        OSError("connection reset by peer"),
        OperationalError("COMMIT", None, sqlite3.OperationalError("disk I/O error")),
    ],
    ids=["os-error", "dbapi-error"],
)
async def test_a_failed_batch_drops_what_was_fetched_after_it_and_reseeks_to_stored_positions(
    store: Store, engine: AsyncEngine, failure: Exception
) -> None:
    log = FakeLog()
    log.extend_events(workload(sessions=40))
    consumer = FakeConsumer(log)
    run = await start_loop(store, consumer, {E0, E1})
    seen: dict[str, int] = {}

    async def fetched_ahead() -> None:
        # the loop fetches and decodes batch 4 while batch 3 commits: fail once it holds it
        await wait_for(lambda: len(consumer.batches) >= 4)
        seen["seeks"] = len(consumer.seeks)

    run.ingestor.projector.during[3] = fetched_ahead
    run.ingestor.projector.fail_on[3] = failure
    try:
        await wait_for(all_settled(run, log))
    finally:
        await run.stop()

    stored_before = merged(run.ingestor.outcomes[:2])  # batch 3 rolled back
    reseeks = consumer.seeks[seen["seeks"] :][:2]
    assert sorted(reseeks) == sorted((tp, stored_before.get(key(tp))) for tp in (E0, E1))
    assert sum(o.skipped for o in run.settled) == 0  # batch 4 was not applied ahead of batch 3
    await assert_exactly_once(engine, log, run.ingestor)


async def test_while_stored_positions_are_unreadable_nothing_is_fetched_or_committed(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FakeLog()
    log.extend_events(workload())
    consumer = FakeConsumer(log)
    real_load = positions_module.load_positions  # the function `consumer` imported
    away = {"reads left": 0}
    during_outage: list[tuple[int, int]] = []

    async def load_positions(conn: AsyncConnection, *args: Any, **kwargs: Any) -> Positions:
        if away["reads left"] > 0:
            away["reads left"] -= 1
            during_outage.append((consumer.polls, len(consumer.commits)))
            raise OSError("connection refused")
        return await real_load(conn, *args, **kwargs)

    monkeypatch.setattr(consumer_module, "load_positions", load_positions)
    run = await start_loop(store, consumer, {E0, E1})

    async def database_goes_away() -> None:
        away["reads left"] = 3

    run.ingestor.projector.during[2] = database_goes_away
    run.ingestor.projector.fail_on[2] = OSError("server closed the connection")
    try:
        await wait_for(all_settled(run, log))
    finally:
        await run.stop()

    assert away["reads left"] == 0 and len(during_outage) == 3
    assert len(set(during_outage)) == 1  # no poll and no Kafka commit while it was away
    await assert_exactly_once(engine, log, run.ingestor)


async def applied_by_a_first_run(store: Store) -> tuple[FakeLog, Run]:
    """A log whose records a first loop applied, and that loop, stopped."""
    log = FakeLog()
    log.extend_events(workload())
    run = await start_loop(store, FakeConsumer(log, name="first"), {E0, E1})
    await wait_for(all_settled(run, log))
    await run.stop()
    return log, run


async def test_an_assignment_the_database_cannot_answer_waits_for_the_stored_positions(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log, run1 = await applied_by_a_first_run(store)
    log.extend_events(workload(seed=8, prefix="later-"))
    log.committed = {E0: 2, E1: 1}  # behind the stored positions, as Kafka's copy may be
    real_load = positions_module.load_positions  # the function `consumer` imported
    failures = {"left": 3}

    async def unreadable_at_first(conn: AsyncConnection, *args: Any, **kwargs: Any) -> Positions:
        if failures["left"] > 0:
            failures["left"] -= 1
            raise OSError("connection refused")
        return await real_load(conn, *args, **kwargs)

    monkeypatch.setattr(consumer_module, "load_positions", unreadable_at_first)
    second = FakeConsumer(log, name="second")
    stored = await stored_positions(engine)
    run2 = await start_loop(store, second, {E0, E1})
    try:
        await wait_for(all_settled(run2, log))
    finally:
        await run2.stop()

    # the listener retried until the database answered, and sought the stored positions: not
    # one record was read from Kafka's copy of the offsets
    assert failures["left"] == 0 and second.listener_errors == []
    assert sorted(second.seeks) == sorted((tp, stored[key(tp)]) for tp in (E0, E1))
    assert sum(o.skipped for o in run2.settled) == 0
    await assert_exactly_once(engine, log, run1.ingestor, run2.ingestor)


def load_positions_slowly(monkeypatch: pytest.MonkeyPatch) -> None:
    """The listener reads the stored positions 0.2 s late: the loop polls meanwhile, fetching
    from the group's committed offsets (as aiokafka does during a rebalance)."""
    real_load = positions_module.load_positions  # the function `consumer` imported

    async def slow_load(conn: AsyncConnection, *args: Any, **kwargs: Any) -> Positions:
        await asyncio.sleep(0.2)
        return await real_load(conn, *args, **kwargs)

    monkeypatch.setattr(consumer_module, "load_positions", slow_load)


async def test_what_is_fetched_before_the_stored_positions_are_sought_is_not_applied(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    # aiokafka fetches a newly assigned partition from the group's committed offsets while
    # the listener reads the stored positions; here the group's offsets are ahead of them (a
    # database restored from a backup): applied, those records would move the stored
    # positions past the records between, which would never be applied
    log, run1 = await applied_by_a_first_run(store)
    log.extend_events(workload(seed=8, prefix="between-"))
    log.committed = {tp: len(rs) for tp, rs in log.partitions.items()}  # ahead of the stored
    log.extend_events(workload(seed=9, prefix="after-"))
    load_positions_slowly(monkeypatch)
    second = FakeConsumer(log, name="second")
    run2 = await start_loop(store, second, None)
    await second.rebalance({E0, E1})
    try:
        await wait_for(all_settled(run2, log))
    finally:
        await run2.stop()

    assert second.batches  # records were fetched before the listener sought the positions
    await assert_exactly_once(engine, log, run1.ingestor, run2.ingestor)


async def test_a_quiet_stream_settles_the_last_batch_without_waiting_out_the_poll(
    store: Store,
    engine: AsyncEngine,
) -> None:
    log = FakeLog()
    log.extend_events(workload(sessions=3))
    consumer = FakeConsumer(log)
    run = await start_loop(store, consumer, {E0, E1}, max_records=500, poll_timeout_ms=20_000)
    try:
        await wait_for(lambda: len(run.settled) == 1 and bool(consumer.commits), within=5)
        assert consumer.open_polls == 1  # the next poll is still waiting for records
        assert {key(tp): o for tp, o in consumer.commits[-1].items()} == log.ends()
    finally:
        await run.stop()
    await assert_exactly_once(engine, log, run.ingestor)


@pytest.mark.parametrize("next_poll", ["fetched", "waiting"])
async def test_stopping_mid_batch_rolls_it_back_with_its_positions(
    store: Store, engine: AsyncEngine, next_poll: str
) -> None:
    # fetched: the next batch is fetched and decoded while batch 3 is stuck in the database;
    # waiting: the stuck batch holds the whole log, so the loop waits on the next poll too
    hung, max_records, poll_ms = (3, 25, 20) if next_poll == "fetched" else (1, 1000, 20_000)
    log = FakeLog()
    log.extend_events(workload(sessions=40))
    consumer = FakeConsumer(log)
    run = await start_loop(
        store, consumer, {E0, E1}, max_records=max_records, poll_timeout_ms=poll_ms
    )
    inside = asyncio.Event()

    async def stuck() -> None:
        inside.set()
        await asyncio.Event().wait()

    run.ingestor.projector.during[hung] = stuck
    await asyncio.wait_for(inside.wait(), 10)
    await asyncio.sleep(0.05)  # let the loop reach its next await
    await asyncio.wait_for(run.stop(), 5)  # what Registry.stop does

    assert run.task.cancelled() and consumer.open_polls == 0
    assert len(run.ingestor.outcomes) == hung - 1
    stored = await stored_positions(engine)
    assert stored == merged(run.ingestor.outcomes)
    below = [r.value for r in log.all_records() if r.offset < stored.get((r.topic, r.partition), 0)]
    assert await session_states(engine) == expected_sessions(below)


async def test_a_rebalance_while_the_loop_reseeks_after_a_failure_does_not_stop_it(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = FakeLog()
    log.extend_events(workload())
    consumer = FakeConsumer(log)
    real_load = positions_module.load_positions  # the function `consumer` imported
    armed = {"reseek": False}

    async def load_positions(conn: AsyncConnection, *args: Any, **kwargs: Any) -> Positions:
        found = await real_load(conn, *args, **kwargs)
        if armed["reseek"]:  # the re-seek's read is in flight: the group rebalances meanwhile
            armed["reseek"] = False
            rebalancing = asyncio.create_task(consumer.rebalance({E0}))  # E1 to another member
            await asyncio.wait({rebalancing}, timeout=0.1)
        return found

    monkeypatch.setattr(consumer_module, "load_positions", load_positions)
    run = await start_loop(store, consumer, {E0, E1})

    async def arm() -> None:
        armed["reseek"] = True

    run.ingestor.projector.during[2] = arm
    run.ingestor.projector.fail_on[2] = OSError("server closed the connection")
    try:
        await wait_for(
            lambda: run.task.done() or merged(run.settled).get(key(E0)) == log.ends()[key(E0)]
        )
    finally:
        await run.stop()  # re-raises what stopped the loop
    assert consumer.assignment() == {E0} and consumer.refused == []
    assert (await stored_positions(engine))[key(E0)] == log.ends()[key(E0)]


async def test_the_next_batch_is_applied_while_the_last_relays_and_commits_in_order(
    store: Store, engine: AsyncEngine
) -> None:
    """The relay and Kafka offset commit of batch n run while batch n + 1 is applied: a relay
    held up holds up no batch, and the relays and commits still follow the batches' order
    (each in a chain of its own: the offset commits go on meanwhile)."""
    log = FakeLog()
    log.extend_events(workload())
    consumer = FakeConsumer(log)
    release = asyncio.Event()
    relayed: list[int] = []

    async def relay(outcome: IngestOutcome) -> None:
        if not relayed:
            await release.wait()  # the first batch's relay waits until released
        relayed.append(len(relayed))

    run = await start_loop(store, consumer, {E0, E1}, relay=relay)
    try:
        await wait_for(lambda: len(run.ingestor.outcomes) >= 3)
        # batches 2 and 3 committed to the database while batch 1's relay waited; no relay
        # went ahead of it
        assert run.settled == [] and relayed == []
        release.set()
        await wait_for(all_settled(run, log))
        await run.loop.published()
    finally:
        await run.stop()
    assert relayed == list(range(len(run.ingestor.outcomes)))
    assert run.settled == run.ingestor.outcomes  # in the order the batches committed
    assert len(consumer.commits) == len(run.ingestor.outcomes)
    for earlier, later in itertools.pairwise(consumer.commits):
        assert all(later.get(tp, offset) >= offset for tp, offset in earlier.items())
    await assert_exactly_once(engine, log, run.ingestor)


async def test_a_relay_never_waits_for_an_offset_commit(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The group's coordinator slow to take batch 1's offsets (it retries while the
    coordinator loads or moves) holds up no relay: every batch's revocations go out. (The
    relay of batch n + 1 waited for batch n's offset commit.)"""
    log = FakeLog()
    log.extend_events(workload())
    consumer = FakeConsumer(log)
    coordinator_back = asyncio.Event()
    commit = consumer.commit

    async def slow_commit(offsets: Any) -> None:
        await coordinator_back.wait()
        await commit(offsets)

    monkeypatch.setattr(consumer, "commit", slow_commit)
    run = await start_loop(store, consumer, {E0, E1})
    try:
        await wait_for(all_settled(run, log))  # every batch relayed
        assert len(run.settled) >= 2 and consumer.commits == []
        coordinator_back.set()
        await run.loop.published()
    finally:
        await run.stop()
    assert len(consumer.commits) == len(run.ingestor.outcomes)
    for earlier, later in itertools.pairwise(consumer.commits):  # still in order
        assert all(later.get(tp, offset) >= offset for tp, offset in earlier.items())
    await assert_exactly_once(engine, log, run.ingestor)


async def test_a_stop_while_a_relay_and_offset_commit_wait_loses_and_repeats_nothing(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stopped with batches committed to the database but neither relayed nor copied to
    Kafka's offsets (a crash there): the next loop resumes from the stored positions, applies
    nothing twice and misses nothing, although Kafka's offsets lag."""
    log = FakeLog()
    log.extend_events(workload())
    held = asyncio.Event()  # never set: every relay of the first loop waits

    async def stuck(_: Any) -> None:
        await held.wait()

    first = FakeConsumer(log, name="first")
    monkeypatch.setattr(first, "commit", stuck)  # and every offset commit
    # three batches, then none begins: the stop cannot land inside a commit whose outcome the
    # test would not know of (the positions would then run ahead of the outcomes)
    run1 = await start_loop(store, first, {E0, E1}, relay=stuck, hold_after=3)
    await wait_for(lambda: len(run1.ingestor.outcomes) >= 3)
    await run1.stop()
    assert run1.settled == [] and first.commits == [] and log.committed == {}
    stored = await stored_positions(engine)
    assert stored == merged(run1.ingestor.outcomes) and stored != {}

    second = FakeConsumer(log, name="second")
    run2 = await start_loop(store, second, {E0, E1})
    try:
        await wait_for(all_settled(run2, log))
        await run2.loop.published()
    finally:
        await run2.stop()
    assert sorted(second.seeks) == sorted((tp, stored.get(key(tp))) for tp in (E0, E1))
    assert sum(o.skipped for o in run2.settled) == 0
    assert {key(tp): o for tp, o in log.committed.items()} == log.ends()
    await assert_exactly_once(engine, log, run1.ingestor, run2.ingestor)


async def test_a_batch_whose_crc_fails_holds_its_partition_only_and_loses_nothing(
    store: Store, engine: AsyncEngine
) -> None:
    """The others are read on, what the failing fetch dropped of them is read again, the held
    partition is fetched again on its retry, and once mended all is applied once."""
    log = FakeLog()
    log.extend_events(workload(sessions=40))
    consumer = FakeConsumer(log)
    damaged_at = len(log.partitions[E1]) // 2
    consumer.damaged[E1] = damaged_at  # E0 comes first in a fetch: its records are dropped
    run = await start_loop(store, consumer, {E0, E1}, held_retry_seconds=0.05)
    try:

        async def others_read() -> bool:
            stored = await stored_positions(engine)
            return stored.get(key(E0)) == log.ends()[key(E0)] and stored.get(key(E1)) == damaged_at

        await wait_for(others_read)
        assert E1 in run.loop.held and consumer.dropped  # the drop happened, and was read again
        # one retry at a time while held: none for the moment between a retry resuming the
        # partition and the fetch that holds it again, never two
        retries = set()
        for _ in range(40):
            retries.add(len(run.loop._retries))
            await asyncio.sleep(0.01)
        assert max(retries) == 1, retries
        del consumer.damaged[E1]  # the broker serves the batch whole again
        await wait_for(all_settled(run, log))
        assert not run.loop.held and not run.loop._retries
    finally:
        await run.stop()
    await assert_exactly_once(engine, log, run.ingestor)


async def test_a_held_partition_given_back_by_a_rebalance_has_one_retry_and_flows_once_mended(
    store: Store, engine: AsyncEngine
) -> None:
    """A new assignment forgets the pause: met again, it is held again, its earlier retry
    replaced, not added to.

    The retries are a minute apart, so none runs during the test (at 0.2 s, one ran before a
    loaded machine had held the partition again, and the test failed); the mended partition
    flows after the next rebalance instead."""
    log = FakeLog()
    log.extend_events(workload(sessions=30))
    consumer = FakeConsumer(log)
    consumer.damaged[E0] = 3
    run = await start_loop(store, consumer, {E0, E1}, held_retry_seconds=60)
    try:
        await wait_for(lambda: E0 in run.loop.held)
        first, first_retry = run.loop.held[E0], run.loop._retries[E0]
        await consumer.rebalance({E0, E1})
        await wait_for(lambda: run.loop.held.get(E0) is not first)  # met again, held again
        # the earlier retry cancelled, not left to run beside the new one
        assert first_retry.cancelled()
        assert list(run.loop._retries) == [E0]
        assert not run.loop._retries[E0].cancelled()
        del consumer.damaged[E0]
        await consumer.rebalance({E0, E1})  # the pause forgotten again, the batch whole
        await wait_for(all_settled(run, log))
        assert not run.loop.held
    finally:
        await run.stop()
    await assert_exactly_once(engine, log, run.ingestor)


async def test_a_damaged_batch_fetched_while_positions_are_sought_is_not_held(
    store: Store, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """aiokafka fetches a newly assigned partition from the group's committed offset while the
    listener reads the stored positions: a damaged batch before the stored position (one an
    operator skipped with `positions set`) may be met then. Held, the partition was paused,
    and released at once by a stored position already past it: paused for good."""
    log, run1 = await applied_by_a_first_run(store)
    log.committed = {}  # the group's offsets never committed: fetched from the beginning
    load_positions_slowly(monkeypatch)
    second = FakeConsumer(log, name="second")
    second.damaged[E0] = 1
    run2 = await start_loop(store, second, None)
    await second.rebalance({E0, E1})
    log.extend_events(workload(seed=8, prefix="after-"))
    try:
        await wait_for(all_settled(run2, log))
    finally:
        await run2.stop()

    assert second.damaged_met and not run2.loop.held and not second.paused()
    await assert_exactly_once(engine, log, run1.ingestor, run2.ingestor)
