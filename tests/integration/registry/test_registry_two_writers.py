"""Two registry instances writing one session's row at once: a command by ids naming a session
whose creation another instance is folding (no broker: the projector in units of work, as two
instances' ingestors run it).

The instance holding the commands partition applies the command; the one holding the
session's events partition folds its `session.created`. When neither row is stored yet there is
no row to lock, so each transaction reads "absent", and the later write must not wipe what the
earlier one stored. PostgreSQL only: on SQLite every writer's transaction begins IMMEDIATE and
waits for the other to end, so the second reads what the first wrote.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import cast

import pytest
from registry_helpers import NOW, created, sid
from sqlalchemy import select, text

from read_model.store import Store
from read_model.tables import outbox, sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import decode_event, decode_revocation
from session_contracts.models import SessionEvent, SessionRevoked, TerminateSessions, as_utc
from session_contracts.topics import Topics
from session_registry.adapters.positions import lock_positions, save_positions
from session_registry.service_layer.projection import Projector

TOPICS = Topics(prefix="writers.")
pytestmark = pytest.mark.parametrize(
    "db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True
)


def by_ids(*credentials: str) -> TerminateSessions:
    return TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid(c) for c in credentials],
    )


async def fold(store: Store, events: Sequence[SessionEvent]) -> None:
    async with UnitOfWork(store) as uow:
        await Projector(TOPICS).apply(uow, events, [], NOW)


async def apply_command(store: Store, command: TerminateSessions) -> None:
    async with UnitOfWork(store) as uow:
        await Projector(TOPICS).apply(uow, [], [command], NOW)


async def waiting_on_a_row_lock(store: Store, task: asyncio.Task[None]) -> None:
    """Return once a backend of this database waits for a lock (the other writer's row), or
    fail: without that wait the two transactions did not overlap as the test means.

    Each read in a transaction of its own: PostgreSQL lists a transaction's backends once, at
    its first read of `pg_stat_activity`, so a writer that connected later was never seen
    (the test failed so under load, the writer's connection made after the first read)."""
    query = text(
        "SELECT count(*) FROM pg_stat_activity "
        "WHERE datname = current_database() AND wait_event_type = 'Lock'"
    )
    async with store.engine.connect() as conn:
        for _ in range(200):
            waiting = await conn.scalar(query)
            await conn.rollback()
            if waiting:
                return
            assert not task.done(), "the other writer finished without waiting for the row"
            await asyncio.sleep(0.05)
    raise AssertionError("no writer waited for the other's row within 10 s")


async def stored(store: Store, credential: str) -> dict[str, object]:
    async with store.engine.connect() as conn:
        row = (
            await conn.execute(select(sessions).where(sessions.c.session_id == sid(credential)))
        ).one()
    return dict(row._mapping)


async def published(store: Store) -> tuple[list[SessionEvent], list[SessionRevoked]]:
    """The outbox's records: events for `sessions.events`, revocations."""
    async with store.engine.connect() as conn:
        records = [
            (r.topic, bytes(r.value))
            for r in await conn.execute(select(outbox).order_by(outbox.c.id))
            if r.value is not None
        ]
    events = [decode_event(v) for t, v in records if t == TOPICS.events]
    return events, [decode_revocation(v) for t, v in records if t == TOPICS.revocations]


async def test_a_command_written_after_another_instance_created_the_session_ends_and_revokes_it(
    store: Store,
) -> None:
    """The creation's transaction writes first; the command's, begun before that write was
    committed, reads no row and writes after it. It must end the created session, not store
    over it a session never created (its creation lost, so never revoked: open for good)."""
    command = by_ids("fresh")
    async with UnitOfWork(store) as creating:
        await Projector(TOPICS).apply(creating, [created("fresh")], [], NOW)
        applying = asyncio.create_task(apply_command(store, command))
        await waiting_on_a_row_lock(store, applying)  # it read no row, and waits to write it
    await applying

    row = await stored(store, "fresh")
    assert row["created_at"] is not None, "the command's write wiped the session's creation"
    assert (row["state"], row["end_reason"], row["ended_by"]) == ("terminated", "admin", "admin-7")
    _, revoked = await published(store)
    assert [(r.session_id, r.reason.value) for r in revoked] == [(sid("fresh"), "admin")]


async def test_a_creation_written_after_the_command_is_ended_by_the_commands_event(
    store: Store,
) -> None:
    """The command's transaction writes first (a row never created, ended); the creation's,
    begun before that write was committed, reads no row and writes after it: the session is
    open for a moment. The command's `session.terminated`, which the relay publishes on the
    session's events partition, is folded next by the instance that folded the creation, and
    ends and revokes it."""
    command = by_ids("fresh")
    async with UnitOfWork(store) as applying:
        await Projector(TOPICS).apply(applying, [], [command], NOW)
        creating = asyncio.create_task(fold(store, [created("fresh")]))
        await waiting_on_a_row_lock(store, creating)
    await creating
    assert (await stored(store, "fresh"))["state"] == "open"  # the creation's write came last

    (terminated,), revoked = await published(store)
    assert revoked == []
    assert terminated.type == "session.terminated" and terminated.session_id == sid("fresh")
    await fold(store, [terminated])
    row = await stored(store, "fresh")
    assert (row["state"], row["end_reason"], row["ended_by"]) == ("terminated", "admin", "admin-7")
    assert as_utc(cast(datetime, row["ended_at"])) == NOW
    _, revoked = await published(store)
    assert [(r.session_id, r.reason.value) for r in revoked] == [(sid("fresh"), "admin")]


async def test_a_new_groups_first_batches_take_turns(store: Store) -> None:
    """Two instances of a group that has stored no position yet: no position row to lock, so
    each batch read "nothing applied" at once and folded beside the other (a mis-keyed record
    brings one session's events to both). The second now waits for the first and finds the
    position it stored."""
    group, topic = f"group-{uuid.uuid4().hex[:8]}", TOPICS.events

    async def second() -> dict[tuple[str, int], int]:
        async with UnitOfWork(store) as uow:
            return await lock_positions(uow, group, {topic})

    async with UnitOfWork(store) as uow:
        assert await lock_positions(uow, group, {topic}) == {}
        waiting = asyncio.create_task(second())
        await waiting_on_a_row_lock(store, cast("asyncio.Task[None]", waiting))
        await save_positions(uow, group, {(topic, 0): 7})
    assert await asyncio.wait_for(waiting, 30) == {(topic, 0): 7}


async def test_a_batch_of_a_topic_without_a_stored_position_takes_turns_with_the_others(
    store: Store,
) -> None:
    """The group has stored the commands' position only. A batch of events alone found no row
    and took the group's lock; one of events and commands found the commands' row, locked it,
    and went on beside it (a review, stop 70). Any topic without a row takes the lock now."""
    group, events, commands = f"group-{uuid.uuid4().hex[:8]}", TOPICS.events, TOPICS.commands
    async with UnitOfWork(store) as uow:
        await save_positions(uow, group, {(commands, 0): 5})

    async def second() -> dict[tuple[str, int], int]:
        async with UnitOfWork(store) as uow:
            return await lock_positions(uow, group, {events, commands})

    async with UnitOfWork(store) as uow:
        assert await lock_positions(uow, group, {events}) == {}
        waiting = asyncio.create_task(second())
        await waiting_on_a_row_lock(store, cast("asyncio.Task[None]", waiting))
        await save_positions(uow, group, {(events, 0): 7})
    assert await asyncio.wait_for(waiting, 30) == {(commands, 0): 5, (events, 0): 7}
