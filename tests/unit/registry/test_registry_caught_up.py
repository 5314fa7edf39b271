"""How far the group has applied its records: the moment the sweeper may expire up to.

`ConsumerLoop.caught_up_at` is a moment before which every record of every partition of the
registry's topics is applied, by this process (its positions in memory) or by another instance
of its group (their positions stored in the database). With several instances, each used to
know only its own partitions: one caught up expired, on its clock, a session whose activity
lay unapplied on another's partition (the broker test: `test_registry_sweep_behind.py`).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from aiokafka import TopicPartition
from hotloop_fakes import CONSUMER, NOW, TOPICS, FakeConsumer, FakeLog, migrated_store, start_loop
from hotloop_fakes import stored_positions as stored
from sqlalchemy import delete, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from polling import until
from read_model.store import Store
from read_model.tables import consumer_positions
from read_model.unit_of_work import UnitOfWork
from session_registry.adapters.positions import overwrite_positions
from session_registry.entrypoints import consumer as consumer_module
from session_registry.entrypoints.consumer import Blocker

E0, E1, E2 = (TopicPartition(TOPICS.events, n) for n in range(3))
C0 = TopicPartition(TOPICS.commands, 0)
MINE = {E0, C0}
"""This process's partitions; E1 and E2 are another instance's."""


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await migrated_store(tmp_path)
    yield store
    await store.dispose()


def moment(n: int) -> datetime:
    return NOW + timedelta(seconds=n)


async def store_position(engine: AsyncEngine, tp: TopicPartition, offset: int) -> None:
    """What another instance of the group writes with the rows it applied."""
    c = consumer_positions.c
    async with engine.begin() as conn:
        await conn.execute(
            delete(consumer_positions).where(
                c.consumer == CONSUMER, c.topic == tp.topic, c.partition == tp.partition
            )
        )
        await conn.execute(
            insert(consumer_positions).values(
                consumer=CONSUMER, topic=tp.topic, partition=tp.partition, next_offset=offset
            )
        )


def append(log: FakeLog, tp: TopicPartition, count: int) -> None:
    for _ in range(count):
        log.append(tp.topic, tp.partition, b"{}", b"k")


async def applied_mine(store: Store, log: FakeLog) -> None:
    async def done() -> bool:
        return (await stored(store.engine)).get((E0.topic, E0.partition)) == len(log.partitions[E0])

    await until(done, 10, "this process's partition applied")


async def test_a_moment_is_caught_up_once_every_partition_of_the_group_is_applied_up_to_it(
    store: Store,
) -> None:
    log = FakeLog()
    append(log, E0, 3)
    append(log, E1, 4)  # another instance's, not applied yet
    run = await start_loop(store, FakeConsumer(log), MINE)
    try:
        await applied_mine(store, log)
        await run.loop.ask_ends(moment(1))
        assert run.loop.caught_up_at is None  # E1's records applied by nobody yet
        assert run.loop.blocking() == Blocker(E1.topic, 1, applied=0, end=4)
        await store_position(store.engine, E1, 3)
        await run.loop.ask_ends(moment(2))
        assert run.loop.caught_up_at is None  # one of them still
        await store_position(store.engine, E1, 4)
        append(log, E1, 1)  # arrives after moment 2
        await run.loop.ask_ends(moment(3))
        # moments 1 and 2 are reached; 3 is not (its last record is unapplied)
        assert run.loop.caught_up_at == moment(2)
        assert run.loop.blocking() == Blocker(E1.topic, 1, applied=4, end=5)
        await store_position(store.engine, E1, 5)
        await run.loop.ask_ends(moment(4))
        assert run.loop.caught_up_at == moment(4)
        assert run.loop.blocking() is None
    finally:
        await run.stop()


async def test_this_processs_own_batches_reach_a_moment_without_asking_again(
    store: Store,
) -> None:
    log = FakeLog()
    run = await start_loop(store, FakeConsumer(log), MINE)
    try:
        append(log, E0, 2)  # E0 has records this process has not applied yet when asked
        await run.loop.ask_ends(moment(1))
        await applied_mine(store, log)

        async def reached() -> bool:
            return run.loop.caught_up_at == moment(1)

        await until(reached, 10, "moment 1 reached by the batch that applied E0")
    finally:
        await run.stop()


async def test_records_deleted_before_anyone_applied_them_do_not_stop_every_sweep(
    store: Store,
) -> None:
    log = FakeLog()
    append(log, E0, 2)
    append(log, E1, 6)
    log.starts[E1] = 6  # every record of E1 deleted by retention; no position stored for it
    append(log, E2, 3)
    await store_position(store.engine, E2, 1)
    log.starts[E2] = 2  # a stored position before the records still held
    run = await start_loop(store, FakeConsumer(log), MINE)
    try:
        await applied_mine(store, log)
        await run.loop.ask_ends(moment(1))
        assert run.loop.caught_up_at is None  # E2's third record is held and unapplied
        await store_position(store.engine, E2, 3)
        await run.loop.ask_ends(moment(2))
        assert run.loop.caught_up_at == moment(2)
    finally:
        await run.stop()


async def test_a_group_steadily_behind_still_reaches_a_moment(store: Store) -> None:
    log = FakeLog()
    asks = 3 * consumer_module.ASKS_KEPT
    run = await start_loop(store, FakeConsumer(log), MINE)
    ends = []
    try:
        for n in range(asks):  # every ask finds a new record on E1, which is applied late
            append(log, E1, 1)
            ends.append(len(log.partitions[E1]))
            await run.loop.ask_ends(moment(n))
        assert run.loop.caught_up_at is None
        await store_position(store.engine, E1, ends[asks // 2])  # half of them applied since
        append(log, E1, 1)
        await run.loop.ask_ends(moment(asks))
        reached = run.loop.caught_up_at
        assert reached is not None
        assert moment(0) <= reached <= moment(asks // 2)
    finally:
        await run.stop()


async def test_no_moment_is_reached_while_the_metadata_lacks_a_partition_the_group_applied(
    store: Store,
) -> None:
    """A topic grew: the group has applied a new partition this consumer's metadata does not
    list yet, so other new partitions (with activity on them) may be missing from the ends."""
    log = FakeLog()
    e3, e4 = TopicPartition(TOPICS.events, 3), TopicPartition(TOPICS.events, 4)
    append(log, E0, 2)
    append(log, e3, 2)
    append(log, e4, 1)  # on a new partition nobody has applied yet
    await store_position(store.engine, e3, 2)
    run = await start_loop(store, FakeConsumer(log), MINE)
    try:
        await applied_mine(store, log)
        await run.loop.ask_ends(moment(1))  # the metadata lists partitions 0-2 only
        assert run.loop.caught_up_at is None
        log.partition_counts[TOPICS.events] = 5  # refreshed
        await run.loop.ask_ends(moment(2))
        assert run.loop.caught_up_at is None
        assert run.loop.blocking() == Blocker(TOPICS.events, 4, applied=0, end=1)
        await store_position(store.engine, e4, 1)
        await run.loop.ask_ends(moment(3))
        assert run.loop.caught_up_at == moment(3)
    finally:
        await run.stop()


async def test_a_partition_ending_in_a_transaction_marker_is_stored_past_it(store: Store) -> None:
    """A marker is no record: the loop applied a partition up to it, one short of the end, and
    no moment was reached until a record followed (on an idle partition, maybe never)."""
    log = FakeLog()
    append(log, E0, 2)
    log.append_marker(E0)
    append(log, C0, 1)
    log.append_marker(C0)
    consumer = FakeConsumer(log)
    run = await start_loop(store, consumer, MINE)
    try:

        async def past_the_markers() -> bool:
            positions = await stored(store.engine)
            return positions.get((E0.topic, 0)) == 3 and positions.get((C0.topic, 0)) == 2

        await until(past_the_markers, 10, "the positions stored past the markers")
        await run.loop.ask_ends(moment(1))
        assert run.loop.caught_up_at == moment(1)
        key = (E0.topic, 0)
        append(log, E0, 1)  # a record after a marker is applied as any other
        await applied_mine(store, log)
        # by a batch (it is dead-lettered: `{}` is no event), not stepped over
        assert [o.dead_letters for o in run.ingestor.outcomes if o.positions.get(key) == 4] == [1]
    finally:
        await run.stop()


async def test_positions_another_instance_stores_while_the_ends_are_asked_are_not_past_them(
    store: Store, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """The ends are answered, then another instance applies and stores records arriving
    meanwhile, before this one reads the stored positions: the positions are past the ends just
    asked, and no fault. Read in that order, every ask of a busy group was a position past the
    end (a review of stop 69's first version); the positions are now read before the ends."""
    log = FakeLog()
    append(log, E0, 1)
    append(log, E1, 4)
    await store_position(store.engine, E1, 4)
    consumer = FakeConsumer(log)
    asked = consumer.end_offsets

    async def answered_then_applied(partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        ends = await asked(partitions)
        append(log, E1, 3)  # arrive once the broker has answered
        await store_position(store.engine, E1, len(log.partitions[E1]))  # and are applied
        return ends

    monkeypatch.setattr(consumer, "end_offsets", answered_then_applied)
    run = await start_loop(store, consumer, MINE)
    try:
        await applied_mine(store, log)
        for n in range(1, 4):
            await run.loop.ask_ends(moment(n))
        assert run.loop.past_end == {}
        assert run.loop.caught_up_at == moment(3)
        assert "past the partition's end" not in caplog.text
    finally:
        await run.stop()


async def test_a_position_past_the_end_holds_the_moment_though_the_end_passes_it_later(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A log cut short (an unclean leader election): the group had stored 10 of E1, the new
    leader holds 4, and records arriving since pass 10 within seconds. The records between 4
    and 10 are skipped as applied all the same: the partition stays noted, the sweeps stay held,
    until the repair, across restarts."""
    log = FakeLog()
    append(log, E0, 1)
    append(log, E1, 4)
    await store_position(store.engine, E1, 10)
    run = await start_loop(store, FakeConsumer(log), MINE)
    try:
        await applied_mine(store, log)
        await run.loop.ask_ends(moment(1))
        assert run.loop.past_end == {(E1.topic, 1): (10, 4)}
        assert run.loop.caught_up_at is None
        append(log, E1, 8)  # the end is 12 now
        await store_position(store.engine, E1, 12)
        await run.loop.ask_ends(moment(2))
        assert run.loop.past_end == {(E1.topic, 1): (10, 4)}
        assert run.loop.caught_up_at is None
        said = [r for r in caplog.records if "past the partition's end" in r.getMessage()]
        assert len(said) == 1  # once, at the first ask that found it
    finally:
        await run.stop()

    # restarted before the repair: the note is read back (it was in memory until stop 70, and
    # a restart swept on the clock again)
    again = await start_loop(store, FakeConsumer(log), MINE)
    try:
        await applied_mine(store, log)
        await again.loop.ask_ends(moment(3))
        assert again.loop.past_end == {(E1.topic, 1): (10, 4)}
        assert again.loop.caught_up_at is None
    finally:
        await again.stop()

    async with UnitOfWork(store) as uow:  # the repair: `positions set`
        await overwrite_positions(uow, CONSUMER, {(E1.topic, 1): 12})
    repaired = await start_loop(store, FakeConsumer(log), MINE)
    try:
        await applied_mine(store, log)
        await repaired.loop.ask_ends(moment(4))
        assert repaired.loop.past_end == {}
        assert repaired.loop.caught_up_at == moment(4)
    finally:
        await repaired.stop()
