"""The expiry sweeper over SQLite with an injected clock: each session by its own policy, once.

Sessions are created through the Ingestor (as the consumer loop would), the sweeper runs at
the clock's time, and what it writes is read back: rows, history, and the outbox records the
relay would publish (`session.expired` on the events topic; tombstones for revocations past
`valid_until`; no revocation record for an expiry).
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import cast

import pytest
from hotloop_fakes import (
    TOPICS,
    FakeLog,
    FakeRecord,
    RecordingIngestor,
    migrated_store,
    session_states,
    snapshot,
)
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.active import is_active
from read_model.store import Store
from read_model.tables import outbox, revocations, session_history
from session_contracts.codec import EVENTS, decode, encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import (
    SessionActivity,
    SessionCreated,
    SessionEvent,
    SessionExpired,
    SessionPolicy,
    SessionTerminated,
    SessionType,
    TerminationReason,
)
from session_registry.domain.lifecycle import EXPIRY_NAMESPACE
from session_registry.service_layer.expiry import Sweeper, SweepOutcome

T0 = datetime.fromisoformat("2030-01-01T00:00:00+00:00")
TENANT = "acme"


def sid(name: str) -> str:
    """The handle (the wire's session id) of the session whose credential is `name`."""
    return session_handle(TENANT, name)


class Clock:
    """A clock the test moves by hand."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def created(session_id: str, *, max_s: int, idle_s: int, at: datetime = T0) -> SessionCreated:
    return SessionCreated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=TENANT,
        session_id=sid(session_id),
        user_id="u1",
        user_name="User 1",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
        policy=SessionPolicy(max_session_seconds=max_s, idle_timeout_seconds=idle_s),
    )


def activity(session_id: str, at: datetime) -> SessionActivity:
    return SessionActivity(
        event_id=uuid.uuid4(), occurred_at=at, tenant_id=TENANT, session_id=sid(session_id)
    )


def logout(session_id: str, at: datetime) -> SessionTerminated:
    return SessionTerminated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=TENANT,
        session_id=sid(session_id),
        reason=TerminationReason.logout,
    )


MINUTE = 60
EVENTS_SENT: list[SessionEvent] = [
    # idle after 10 minutes without activity: expires at T0 + 15 min (idle)
    created("idle-1", max_s=86400, idle_s=10 * MINUTE),
    activity("idle-1", T0 + timedelta(minutes=5)),
    # at most 30 minutes long however active: expires at T0 + 30 min (max_length)
    created("long-1", max_s=30 * MINUTE, idle_s=60 * MINUTE),
    activity("long-1", T0 + timedelta(minutes=29)),
    # both limits at the same moment (T0 + 60 min): max_length, idle only when strictly first
    created("tie-1", max_s=60 * MINUTE, idle_s=60 * MINUTE),
    # the same start under a longer policy (created before the settings changed): open until
    # T0 + 2 h
    created("kept-1", max_s=86400, idle_s=120 * MINUTE),
    # ended by a logout before their expiry: the sweeper leaves them as they are, and
    # tombstones their revocations once valid_until (T0 + 30, 40, 50 min) has passed
    created("ended-1", max_s=30 * MINUTE, idle_s=10 * MINUTE),
    logout("ended-1", T0 + timedelta(minutes=1)),
    created("ended-2", max_s=40 * MINUTE, idle_s=10 * MINUTE),
    logout("ended-2", T0 + timedelta(minutes=1)),
    created("ended-3", max_s=50 * MINUTE, idle_s=10 * MINUTE),
    logout("ended-3", T0 + timedelta(minutes=1)),
    # activity whose creation has not arrived: never expired (it was never a session); its
    # expires_at is its activity + activity_only_seconds (1 h: T0 + 65 min), when the sweeper
    # deletes the row
    activity("orphan-1", T0 + timedelta(minutes=5)),
]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A read model holding EVENTS_SENT, ingested at T0 + 2 min."""
    store = await migrated_store(tmp_path)
    ingestor = RecordingIngestor(store, clock=lambda: T0 + timedelta(minutes=2))
    log = FakeLog()
    records = [
        log.append(TOPICS.events, 0, encode(e), record_key(TENANT, e.session_id))
        for e in EVENTS_SENT
    ]
    await ingestor.ingest({("events", 0): records})
    yield store
    await store.dispose()


@pytest.fixture
def engine(store: Store) -> AsyncEngine:
    return store.engine


async def queued(engine: AsyncEngine) -> list[tuple[str, bytes, bytes | None]]:
    async with engine.connect() as conn:
        rows = await conn.execute(select(outbox.c.topic, outbox.c.key, outbox.c.value))
        return [(r.topic, r.key, r.value) for r in rows]


async def sweep(sweeper: Sweeper, now: datetime) -> SweepOutcome:
    """One sweep, bounded in time: a sweeper that keeps finding work would never return."""
    return await asyncio.wait_for(sweeper.sweep(now), 20)


def expiry_id(session_id: str) -> uuid.UUID:
    return uuid.uuid5(EXPIRY_NAMESPACE, f"{TENANT}\x1f{session_id}")


async def test_sessions_past_their_own_expiry_are_expired_the_others_untouched(
    store: Store,
    engine: AsyncEngine,
) -> None:
    clock = Clock(T0 + timedelta(minutes=60))  # exactly tie-1's expiry: due (no longer active)
    before = await session_states(engine)
    queued_before = await queued(engine)
    sweeper = Sweeper(store, TOPICS, batch_size=2)  # several bounded transactions

    outcome = await sweep(sweeper, clock())

    assert outcome.expired == 3
    after = await session_states(engine)
    expired = {sid("idle-1"): "idle", sid("long-1"): "max_length", sid("tie-1"): "max_length"}
    for session_id, reason in expired.items():
        row = after[(TENANT, session_id)]
        assert (row.state, row.end_reason) == ("expired", reason), session_id
        assert row.ended_at == before[(TENANT, session_id)].expires_at
        assert not is_active(row, clock())
    untouched = {k: v for k, v in before.items() if k[1] not in expired}
    assert {k: after[k] for k in untouched} == untouched
    assert before[(TENANT, sid("kept-1"))].state == "open"
    assert {before[(TENANT, sid(f"ended-{n}"))].state for n in (1, 2, 3)} == {"terminated"}
    assert (TENANT, sid("orphan-1")) in after  # its activity-only bound (T0 + 65 min) is later
    assert outcome.deleted == 0

    # one session.expired per session on the events topic, keyed <tenant>/<handle>, nothing else
    # new but the tombstones of the ended sessions' revocations
    new = [q for q in await queued(engine) if q not in queued_before]
    published = [decode(EVENTS, value) for topic, _, value in new if topic == TOPICS.events]
    assert all(isinstance(e, SessionExpired) for e in published)
    expiries = cast(list[SessionExpired], published)  # as the line above asserts
    assert sorted((e.session_id, e.reason.value) for e in expiries) == sorted(expired.items())
    for event in published:
        assert event.event_id == expiry_id(event.session_id)
        assert event.occurred_at == before[(TENANT, event.session_id)].expires_at
    assert sorted(k for t, k, _ in new if t == TOPICS.events) == sorted(
        record_key(TENANT, s) for s in expired
    )
    assert sorted((t, k, v) for t, k, v in new if t != TOPICS.events) == sorted(
        (TOPICS.revocations, record_key(TENANT, sid(f"ended-{n}")), None) for n in (1, 2, 3)
    )
    assert outcome.tombstoned == 3  # in two bounded transactions
    async with engine.connect() as conn:
        history = (await conn.execute(select(session_history))).all()
        remembered = (await conn.execute(select(revocations))).all()
    assert sorted(h.event_id for h in history if h.type == "session.expired") == sorted(
        str(expiry_id(s)) for s in expired
    )
    assert remembered == []


async def test_a_second_sweep_at_the_same_time_changes_nothing(
    store: Store, engine: AsyncEngine
) -> None:
    clock = Clock(T0 + timedelta(minutes=60))
    sweeper = Sweeper(store, TOPICS, batch_size=2)
    await sweep(sweeper, clock())
    before = await snapshot(engine)

    outcome = await sweep(sweeper, clock())

    assert (outcome.expired, outcome.tombstoned) == (0, 0)
    assert await snapshot(engine) == before


async def test_nothing_is_due_before_the_clock_reaches_it_and_later_the_rest_is(
    store: Store,
    engine: AsyncEngine,
) -> None:
    clock = Clock(T0 + timedelta(minutes=14))  # idle-1 at 15 min is the first due
    sweeper = Sweeper(store, TOPICS)
    before = await snapshot(engine)

    assert (await sweep(sweeper, clock())).expired == 0
    assert await snapshot(engine) == before

    clock.advance(minutes=1)
    assert (await sweep(sweeper, clock())).expired == 1
    clock.advance(hours=3)
    outcome = await sweep(sweeper, clock())
    assert outcome.expired == 3  # long-1, tie-1, and now kept-1
    states = await session_states(engine)
    assert {s for (_, s), row in states.items() if row.state == "expired"} == {
        sid("idle-1"),
        sid("long-1"),
        sid("tie-1"),
        sid("kept-1"),
    }
    # never created: never expires (no session.expired for it), but since contract v2 its row
    # is deleted once past its activity-only bound (T0 + 65 min), not kept forever
    assert outcome.deleted == 1
    assert (TENANT, sid("orphan-1")) not in states


async def test_the_published_expiries_folded_back_change_nothing(
    store: Store, engine: AsyncEngine
) -> None:
    await sweep(Sweeper(store, TOPICS), T0 + timedelta(hours=3))
    expired_rows = await session_states(engine)
    history = await snapshot(engine)
    log = FakeLog()
    back: list[FakeRecord] = [
        log.append(TOPICS.events, 1, value, key)
        for topic, key, value in await queued(engine)
        if topic == TOPICS.events
    ]
    assert len(back) == 4

    outcome = await RecordingIngestor(store).ingest({("events", 1): back})

    assert outcome.events == 4
    assert await session_states(engine) == expired_rows
    after = await snapshot(engine)
    for table in ("sessions", "session_history", "revocations", "outbox"):
        assert after[table] == history[table], table


async def test_ended_sessions_go_once_the_retention_is_past_their_end_and_their_expiry(
    store: Store, engine: AsyncEngine
) -> None:
    """ended-1..3 ended at T0 + 1 min and would have idled out at T0 + 10 min: with a day's
    retention they go after T0 + 1 day 10 min, not at their end + 1 day; the sessions expired
    by the sweep go a day after their expiry, each at its own moment."""
    sweeper = Sweeper(store, TOPICS, ended_retention=timedelta(days=1))
    day = T0 + timedelta(days=1)
    first = await sweep(sweeper, day + timedelta(minutes=10))
    assert (first.expired, first.purged) == (4, 0)  # idle-1, long-1, tie-1, kept-1
    assert (await sweep(sweeper, day + timedelta(minutes=10, seconds=1))).purged == 3
    left = {session_id for _, session_id in await session_states(engine)}
    assert left == {sid(s) for s in ("idle-1", "long-1", "tie-1", "kept-1")}
    assert (await sweep(sweeper, day + timedelta(minutes=15, seconds=1))).purged == 1
    assert (await sweep(sweeper, day + timedelta(hours=2))).purged == 2  # long-1, tie-1
    assert (await sweep(sweeper, day + timedelta(hours=2, seconds=1))).purged == 1  # kept-1
    assert not await session_states(engine)
    async with engine.connect() as conn:
        assert list(await conn.execute(select(session_history))) == []


async def test_each_sweep_batch_holds_the_gate_alone(store: Store) -> None:
    """The registry's batches (a termination's among them) wait for one sweep transaction at
    most, not for a whole sweep: the gate is released between the sweep's batches."""
    log: list[str] = []

    class Gate:
        def __init__(self) -> None:
            self.lock = asyncio.Lock()
            self.entered = asyncio.Event()

        async def __aenter__(self) -> None:
            await self.lock.acquire()
            log.append("sweep")
            self.entered.set()

        async def __aexit__(self, *exc: object) -> None:
            self.lock.release()

    gate = Gate()
    sweeper = Sweeper(store, TOPICS, batch_size=1, gate=gate)

    async def batch_of_records() -> None:
        await gate.entered.wait()
        async with gate.lock:  # as the consumer loop's `_apply` takes it
            log.append("batch")

    waiting = asyncio.create_task(batch_of_records())
    outcome = await sweep(sweeper, T0 + timedelta(hours=1))
    await waiting
    assert outcome.expired == 3  # idle-1, long-1, tie-1, one per transaction
    assert log.index("batch") < log.index("sweep", 2), log
