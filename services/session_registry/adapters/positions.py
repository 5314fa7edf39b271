"""Where each consumer stands in each partition, stored with the read model it produced."""

from __future__ import annotations

import weakref
from collections.abc import Collection, Mapping
from datetime import datetime

from sqlalchemy import Select, case, delete, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.store import Store
from read_model.tables import consumer_positions, positions_past_end
from read_model.unit_of_work import UnitOfWork

TopicPartitionKey = tuple[str, int]
_p = consumer_positions.c


def _positions(consumer: str, topics: Collection[str] | None) -> Select[tuple[str, int, int]]:
    query = select(_p.topic, _p.partition, _p.next_offset).where(_p.consumer == consumer)
    if topics is not None:
        query = query.where(_p.topic.in_(sorted(topics)))
    return query.order_by(_p.topic, _p.partition)


async def load_positions(
    conn: AsyncConnection, consumer: str, topics: Collection[str] | None = None
) -> dict[TopicPartitionKey, int]:
    """The next offset to read per (topic, partition) for `consumer`."""
    result = await conn.execute(_positions(consumer, topics))
    return {(row.topic, row.partition): row.next_offset for row in result}


async def lock_positions(
    uow: UnitOfWork, consumer: str, topics: Collection[str]
) -> dict[TopicPartitionKey, int]:
    """`load_positions`, locked until the unit of work ends: a second registry that read the
    same records waits, then finds them applied.

    Every stored position of the topics, not only those of the batch's partitions: so a
    group's batches are applied one at a time, which the fold relies on. It locks only the
    session rows stored already, and a mis-keyed or v1-keyed record brings one session's
    events to two partitions, maybe two instances: two batches both finding a row absent
    would each write it whole, one losing the other's logout or creation (a review, stop
    69). Narrowing this lock to the batch's own partitions would open that.

    A topic of which the group has stored no position yet (its first batches: a new
    deployment, a new group name, a topic whose first records come after the other's) has no
    row to lock, so such a batch takes turns on a lock named after the group as well, and the
    positions are read again once it is held: a batch that waited then finds the rows the one
    before it stored, and locks them. (Taken only when every topic had none, a batch of events
    alone went on beside one of events and commands that had found the commands' row: a
    review, stop 70.)"""
    query = _positions(consumer, topics)
    # The group's lock before any row's: a batch that locked rows and then waited for the
    # lock, while the holder of the lock waited for those rows, was a deadlock (a review of
    # the fix). So a first look, locking nothing, decides; a topic without a row then takes
    # the lock first. (A row stored between the two only makes the lock unneeded.) Once every
    # topic has a row it keeps one (positions are overwritten, never deleted): not looked
    # at again by this process.
    complete = _COMPLETE.setdefault(uow.store, set())
    asked = (consumer, frozenset(topics))
    if asked not in complete:
        stored = {row.topic for row in await uow.conn.execute(query)}
        if set(topics) - stored:
            await uow.store.lock_named(uow.conn, f"consumer_positions/{consumer}")
    result = (await uow.conn.execute(uow.store.for_update(query))).all()
    if asked not in complete and {row.topic for row in result} >= set(topics):
        complete.add(asked)
    return {(row.topic, row.partition): row.next_offset for row in result}


_COMPLETE: weakref.WeakKeyDictionary[Store, set[tuple[str, frozenset[str]]]] = (
    weakref.WeakKeyDictionary()
)
"""Per store, the (consumer, topics) found with a stored position of every topic."""


async def save_positions(
    uow: UnitOfWork, consumer: str, positions: Mapping[TopicPartitionKey, int]
) -> None:
    """Store next offsets; a stored position never moves backwards."""
    await _upsert_positions(uow, consumer, positions, backwards=False)


async def overwrite_positions(
    uow: UnitOfWork, consumer: str, positions: Mapping[TopicPartitionKey, int]
) -> None:
    """Store exactly these next offsets, backwards too (an SRE's `positions set`), and forget
    the notes of their partitions past their end: this is the repair."""
    await _upsert_positions(uow, consumer, positions, backwards=True)
    if positions:
        _n = positions_past_end.c
        await uow.conn.execute(
            delete(positions_past_end).where(
                _n.consumer == consumer,
                tuple_(_n.topic, _n.partition).in_(sorted(positions)),
            )
        )


async def _upsert_positions(
    uow: UnitOfWork,
    consumer: str,
    positions: Mapping[TopicPartitionKey, int],
    *,
    backwards: bool,
) -> None:
    if not positions:
        return
    statement = uow.store.insert(consumer_positions)
    offered = statement.excluded.next_offset
    statement = statement.on_conflict_do_update(
        index_elements=[_p.consumer, _p.topic, _p.partition],
        set_={
            "next_offset": offered
            if backwards
            else case((_p.next_offset > offered, _p.next_offset), else_=offered)
        },
    )
    rows = [
        {"consumer": consumer, "topic": topic, "partition": partition, "next_offset": offset}
        for (topic, partition), offset in sorted(positions.items())
    ]
    await uow.conn.execute(statement, rows)


async def load_past_end(
    conn: AsyncConnection, consumer: str, topics: Collection[str]
) -> dict[TopicPartitionKey, tuple[int, int]]:
    """The partitions of `topics` noted past their end for `consumer`: (stored, end)."""
    _n = positions_past_end.c
    result = await conn.execute(
        select(_n.topic, _n.partition, _n.stored, _n.end_offset).where(
            _n.consumer == consumer, _n.topic.in_(sorted(topics))
        )
    )
    return {(row.topic, row.partition): (row.stored, row.end_offset) for row in result}


async def note_past_end(
    conn: AsyncConnection,
    consumer: str,
    notes: Mapping[TopicPartitionKey, tuple[int, int]],
    now: datetime,
) -> None:
    """Keep these notes (a partition noted again keeps its first note)."""
    if not notes:
        return
    known = await load_past_end(conn, consumer, {topic for topic, _ in notes})
    rows = [
        {
            "consumer": consumer,
            "topic": topic,
            "partition": partition,
            "stored": stored,
            "end_offset": end,
            "noted_at": now,
        }
        for (topic, partition), (stored, end) in sorted(notes.items())
        if (topic, partition) not in known
    ]
    if rows:
        await conn.execute(positions_past_end.insert(), rows)
