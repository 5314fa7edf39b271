"""Termination by filter, set-based and in chunks, against the per-row fold it replaced.

On SQLite and PostgreSQL (no broker: the projector in a unit of work, as the ingestor runs it).
A chunk of 4 makes a handful of sessions span several chunks, the last one partial or empty.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from registry_helpers import NOW, created, expired, sid
from sqlalchemy import select

from read_model.database import open_store, upgrade_schema
from read_model.store import Store
from read_model.tables import applied_commands, outbox, revocations, session_history, sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import decode_event, decode_revocation
from session_contracts.models import (
    SessionEvent,
    SessionFilter,
    SessionTerminated,
    SessionType,
    TerminateSessions,
    as_utc,
)
from session_contracts.topics import Topics
from session_registry.adapters.session_store import lock_states
from session_registry.domain.fold import apply
from session_registry.domain.lifecycle import needs_revocation, termination_event
from session_registry.service_layer import terminations
from session_registry.service_layer.changes import Changes
from session_registry.service_layer.projection import Projector
from session_registry.service_layer.terminations import apply_commands, target_clause

TOPICS = Topics(prefix="bulk.")
CHUNK = 4


@pytest.fixture(autouse=True)
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(terminations, "FILTER_CHUNK", CHUNK)


def by_filter(**conditions: Any) -> TerminateSessions:
    return TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        filter=SessionFilter(**conditions),
        confirmed_at=NOW - timedelta(minutes=2),
    )


def seed_events() -> list[SessionEvent]:
    """Sessions of every kind a filter must tell apart: 13 listed and active (three full
    chunks and one of 1), expired, not listed, created after the confirmed count, another
    tenant's, ids whose order differs between collations."""
    events: list[SessionEvent] = [created(f"s{n:02d}", user=f"u{n % 3}") for n in range(11)]
    events += [created("Zed"), created("_under")]  # case and `_`: the C order, not the locale's
    events += [
        created("old", at=NOW - timedelta(days=2), max_s=3600),  # expired, as swept:
        expired("old", NOW - timedelta(days=2) + timedelta(hours=1)),  # an open one is ended
        created("tok", session_type=SessionType.access_token),  # not listed
        created("late", at=NOW - timedelta(minutes=1)),  # after the confirmed count
        created("s00", tenant="globex"),
    ]
    return events


async def seed(store: Store, events: Sequence[SessionEvent] | None = None) -> None:
    """Store `events` (default: `seed_events()`)."""
    async with UnitOfWork(store) as uow:
        await Projector(TOPICS).apply(uow, seed_events() if events is None else events, [], NOW)


async def reference(store: Store, command: TerminateSessions) -> int:
    """The per-row fold the set-based path replaced: lock, fold, write the whole rows."""
    async with UnitOfWork(store) as uow:
        changes = Changes()
        query = select(sessions).where(target_clause(command)).order_by(sessions.c.session_id)
        ended = 0
        for state in await lock_states(uow, query):
            event = termination_event(command, state)
            apply(state, event)
            changes.states[state.key] = state
            changes.record(event)
            changes.publish_event(TOPICS, event)
            if needs_revocation(None, state, NOW):
                changes.revoke(TOPICS, state)
            ended += 1
        await changes.flush(uow, True)
    return ended


def _plain(value: Any) -> Any:
    """A stored value as both databases compare: times in UTC, bytes as bytes."""
    if isinstance(value, datetime):
        return as_utc(value)
    return bytes(value) if isinstance(value, memoryview) else value


async def contents(store: Store) -> dict[str, Any]:
    """Everything a termination writes, comparable across databases and runs."""
    async with store.engine.connect() as conn:
        rows = {
            r.session_id: {k: _plain(v) for k, v in r._mapping.items()}
            for r in await conn.execute(select(sessions).where(sessions.c.tenant_id == "acme"))
        }
        history = sorted(
            (r.session_id, r.event_id, r.type, _plain(r.occurred_at), str(r.detail))
            for r in await conn.execute(select(session_history))
        )
        revoked = sorted(
            (r.tenant_id, r.session_id, _plain(r.valid_until))
            for r in await conn.execute(select(revocations))
        )
        records = [
            (r.topic, bytes(r.key), None if r.value is None else bytes(r.value))
            for r in await conn.execute(select(outbox).order_by(outbox.c.id))
        ]
    return {"sessions": rows, "history": history, "revocations": revoked, "outbox": records}


async def test_a_filter_ends_in_chunks_exactly_what_the_per_row_fold_ended(
    store: Store, tmp_path: Path
) -> None:
    events = seed_events()
    await seed(store, events)
    command = by_filter()
    async with UnitOfWork(store) as uow:
        changes = Changes()
        applied, ended, *_ = await apply_commands(uow, [command], NOW, TOPICS, changes)
        published = await changes.flush(uow, True)
    assert (applied, ended) == (1, 13)
    got = await contents(store)

    # the same sessions folded row by row, in a second database of the same kind
    other = open_store(f"sqlite+aiosqlite:///{tmp_path / 'reference.db'}")
    await upgrade_schema(other)
    try:
        await seed(other, events)
        assert await reference(other, command) == 13
        expected = await contents(other)
    finally:
        await other.dispose()

    ended_ids = {sid(f"s{n:02d}") for n in range(11)} | {sid("Zed"), sid("_under")}
    assert {k for k, r in got["sessions"].items() if r["state"] == "terminated"} == ended_ids
    for key in ("sessions", "history", "revocations"):
        assert got[key] == expected[key], key
    # the same records, each session's event before its revocation; chunks in id order
    assert sorted(got["outbox"]) == sorted(expected["outbox"])
    assert published == len(got["outbox"]) == 2 * 13
    events = [decode_event(v) for t, _, v in got["outbox"] if t == TOPICS.events and v]
    assert {e.event_id for e in events} == {
        uuid.uuid5(command.command_id, handle) for handle in ended_ids
    }
    revoked = [decode_revocation(v) for t, _, v in got["outbox"] if t == TOPICS.revocations and v]
    assert {r.session_id for r in revoked} == ended_ids
    async with store.engine.connect() as conn:
        (row,) = (await conn.execute(select(applied_commands))).all()
    assert row.terminated == 13


async def test_ids_then_a_filter_in_one_batch_end_each_session_once(store: Store) -> None:
    await seed(store)
    first = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-1",
        session_ids=[sid("s03"), sid("tok")],
    )
    second = by_filter()
    async with UnitOfWork(store) as uow:
        outcome = await Projector(TOPICS).apply(uow, [], [first, second], NOW)
    assert (outcome.commands, outcome.terminated) == (2, 2 + 12)
    got = await contents(store)
    assert outcome.published == len(got["outbox"]) == 2 * 14
    # s03 was ended by the first command only (by admin-1); the filter ended the 12 others
    assert got["sessions"][sid("s03")]["ended_by"] == "admin-1"
    # every event the terminations wrote is a session.terminated
    ended = cast(
        list[SessionTerminated],
        [decode_event(v) for t, _, v in got["outbox"] if t == TOPICS.events and v],
    )
    assert len({e.session_id for e in ended}) == len(ended) == 14
    assert {e.session_id for e in ended if e.command_id == second.command_id} == (
        {sid(f"s{n:02d}") for n in range(11) if n != 3} | {sid("Zed"), sid("_under")}
    )


async def test_a_filter_matching_less_than_a_chunk_and_one_matching_nothing(store: Store) -> None:
    await seed(store)
    exact = by_filter(user_id="u2")  # s02, s05, s08: fewer than a chunk
    nothing = by_filter(user_id="nobody")
    async with UnitOfWork(store) as uow:
        changes = Changes()
        applied, ended, *_ = await apply_commands(uow, [exact, nothing], NOW, TOPICS, changes)
        await changes.flush(uow, True)
    assert (applied, ended) == (2, 3)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(applied_commands.c.terminated))).scalars().all()
    assert sorted(rows) == [0, 3]


async def test_a_failure_in_a_later_chunk_leaves_nothing_behind(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    await seed(store)
    before = await contents(store)
    calls: list[int] = []
    real = Changes.drain

    async def failing(self: Changes, uow: UnitOfWork, *, states: bool = True) -> None:
        calls.append(len(self.outbox))
        if len(calls) == 3:  # the earlier commands' drain, chunk 1, then chunk 2 fails
            raise ConnectionError("the database went away")
        await real(self, uow, states=states)

    monkeypatch.setattr(Changes, "drain", failing)
    command = by_filter()
    with pytest.raises(ConnectionError):
        async with UnitOfWork(store) as uow:
            await Projector(TOPICS).apply(uow, [], [command], NOW)
    assert await contents(store) == before  # rolled back whole: no row, event or record
    monkeypatch.setattr(Changes, "drain", real)

    # retried (as the consumer retries the batch): applied once, completely
    async with UnitOfWork(store) as uow:
        outcome = await Projector(TOPICS).apply(uow, [], [command], NOW)
    async with UnitOfWork(store) as uow:
        again = await Projector(TOPICS).apply(uow, [], [command], NOW)
    assert (outcome.terminated, again.commands, again.published) == (13, 0, 0)
    assert len((await contents(store))["outbox"]) == 26
