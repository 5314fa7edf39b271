"""Contract v2 in the registry, tried as a hostile producer of another tenant would, on both
backends (issue 12 items 4, 6, 7, and "no record stops anything").

Records go through the real Ingestor and Projector into a migrated read model (SQLite and
PostgreSQL); Kafka is not needed: what the registry would publish is read from its outbox.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text

from read_model.database import open_store
from read_model.store import Store
from read_model.tables import (
    applied_commands,
    outbox,
    revocations,
    session_history,
    sessions,
    termination_requests,
)
from read_model.unit_of_work import UnitOfWork, caused_by_data
from refused_rows import refuse_rows
from session_contracts.codec import decode_revocation, encode
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_records import LOG_APPEND_TIME
from session_contracts.models import (
    ExpiryReason,
    SessionActivity,
    SessionCreated,
    SessionEvent,
    SessionExpired,
    SessionPolicy,
    SessionTerminated,
    TerminateSessions,
    TerminationReason,
    as_utc,
)
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import DeadLetter
from session_registry.domain.lifecycle import EXPIRY_NAMESPACE
from session_registry.domain.state import AHEAD_OF_STORE
from session_registry.service_layer.expiry import Sweeper
from session_registry.service_layer.ingest import Ingestor, IngestOutcome
from session_registry.service_layer.projection import Projector

TOPICS = Topics(prefix="iso.")
T0 = datetime(2030, 1, 1, tzinfo=UTC)
A, B = "tenant-a", "tenant-b"
CREDENTIAL = "cookie-of-a-user-of-tenant-a"
HANDLE = session_handle(A, CREDENTIAL)
DAY = 86400


@dataclass(frozen=True)
class Rec:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0
    timestamp_type: int = 0


class Letters:
    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        self.sent.extend(letters)


class Harness:
    """An ingestor over one store, with a clock the test moves, and offsets it hands out."""

    def __init__(self, store: Store, activity_only_seconds: int = 3600) -> None:
        self.store = store
        self.now = T0
        self.letters = Letters()
        projector = Projector(TOPICS, activity_only_seconds=activity_only_seconds)
        self.ingestor = Ingestor(store, projector, "iso", self.letters, lambda: self.now)
        self.offsets: dict[str, int] = {}

    def record(self, message: Any, appended: datetime | None = None) -> Rec:
        """`message` as the next record of its topic; bytes go to the events topic as they are.
        `appended`: the broker's append time (LogAppendTime); else dated by its producer."""
        topic = TOPICS.commands if isinstance(message, TerminateSessions) else TOPICS.events
        offset = self.offsets.get(topic, 0)
        self.offsets[topic] = offset + 1
        value = message if isinstance(message, bytes) else encode(message)
        if appended is None:
            return Rec(topic, 0, offset, b"k", value)
        millis = int(appended.timestamp() * 1000)
        return Rec(topic, 0, offset, b"k", value, timestamp=millis, timestamp_type=LOG_APPEND_TIME)

    async def ingest(self, *messages: Any) -> IngestOutcome:
        return await self.ingest_records([self.record(m) for m in messages])

    async def ingest_appended(self, *messages: tuple[Any, datetime]) -> IngestOutcome:
        """Ingest (message, the time the broker appended it) pairs, in this order."""
        return await self.ingest_records([self.record(m, at) for m, at in messages])

    async def ingest_records(self, records: list[Rec]) -> IngestOutcome:
        batch: dict[str, list[Rec]] = {}
        for r in records:
            batch.setdefault(r.topic, []).append(r)
        return await self.ingestor.ingest(batch)

    async def rows(self, table: Any, *where: Any) -> list[Any]:
        async with self.store.engine.connect() as conn:
            return list(await conn.execute(select(table).where(*where)))


def created(
    tenant: str, handle: str, *, at: datetime = T0, max_s: int = 30 * DAY
) -> SessionCreated:
    return SessionCreated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=tenant,
        session_id=handle,
        user_id="u-1",
        user_name="Ada",
        session_type="browser",
        ip_address="10.0.0.1",
        policy=SessionPolicy(max_session_seconds=max_s, idle_timeout_seconds=max_s),
    )


def terminated(tenant: str, handle: str, at: datetime) -> SessionTerminated:
    return SessionTerminated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id=tenant,
        session_id=handle,
        reason=TerminationReason.security,
    )


def command(
    tenant: str, handles: list[str], command_id: uuid.UUID | None = None
) -> TerminateSessions:
    return TerminateSessions(
        command_id=command_id or uuid.uuid4(),
        requested_at=T0 + timedelta(minutes=1),
        tenant_id=tenant,
        requested_by="admin-1",
        session_ids=handles,
    )


async def published_revocations(store: Store) -> list[tuple[bytes, bytes | None]]:
    async with store.engine.connect() as conn:
        rows = await conn.execute(
            select(outbox.c.key, outbox.c.value)
            .where(outbox.c.topic == TOPICS.revocations)
            .order_by(outbox.c.id)
        )
        return [(bytes(r.key), None if r.value is None else bytes(r.value)) for r in rows]


async def test_another_tenant_cannot_un_revoke_a_session_by_reusing_its_handle(
    store: Store,
) -> None:
    """Issue 12 item 4: tenant B's created (max 4 s) + terminated with A's handle."""
    h = Harness(store)
    await h.ingest(created(A, HANDLE), command(A, [HANDLE]))
    [(key, value)] = await published_revocations(store)
    assert key == record_key(A, HANDLE)
    assert value is not None
    a_until = decode_revocation(value).valid_until
    assert a_until == T0 + timedelta(days=30)

    h.now = T0 + timedelta(minutes=2)
    await h.ingest(
        created(B, HANDLE, at=h.now, max_s=4), terminated(B, HANDLE, h.now + timedelta(seconds=1))
    )
    stored = {(r.tenant_id, r.session_id): r.valid_until for r in await h.rows(revocations)}
    assert stored[(A, HANDLE)].replace(tzinfo=UTC) == a_until
    assert (B, HANDLE) in stored
    # B's tombstone comes after 4 s, under B's key only; A's revocation stays
    h.now = T0 + timedelta(minutes=3)
    await Sweeper(store, TOPICS).sweep(h.now)
    records = await published_revocations(store)
    tombstones = [key for key, value in records if value is None]
    assert tombstones == [record_key(B, HANDLE)]
    left = {(r.tenant_id, r.session_id) for r in await h.rows(revocations)}
    assert left == {(A, HANDLE)}
    [a_row] = await h.rows(sessions, sessions.c.tenant_id == A)
    assert a_row.state == "terminated" and a_row.end_reason == "admin"


async def test_another_tenant_cannot_pre_empt_history_or_audit_by_reusing_ids(
    store: Store,
) -> None:
    """Issue 12 item 7: B writes first the event id A's expiry will have, and the command id A's
    admin will use; A's history and audit are whole."""
    h = Harness(store)
    a_expiry_id = uuid.uuid5(EXPIRY_NAMESPACE, f"{A}\x1f{HANDLE}")
    a_command_id = uuid.uuid4()
    forged_end = terminated(B, HANDLE, T0).model_copy(update={"event_id": a_expiry_id})
    await h.ingest(created(B, HANDLE), forged_end, command(B, [HANDLE], a_command_id))

    short = created(A, HANDLE, max_s=60)
    other = session_handle(A, "second-cookie")
    await h.ingest(short, created(A, other))
    await h.ingest(command(A, [other], a_command_id))
    h.now = T0 + timedelta(minutes=5)
    outcome = await Sweeper(store, TOPICS).sweep(h.now)
    assert outcome.expired == 1

    a_history = await h.rows(session_history, session_history.c.tenant_id == A)
    by_id = {(r.session_id, r.type): r.event_id for r in a_history}
    assert by_id[(HANDLE, "session.expired")] == str(a_expiry_id)
    assert (other, "session.terminated") in by_id
    [a_row] = await h.rows(sessions, sessions.c.tenant_id == A, sessions.c.session_id == HANDLE)
    assert a_row.state == "expired"
    [other_row] = await h.rows(sessions, sessions.c.tenant_id == A, sessions.c.session_id == other)
    assert other_row.state == "terminated"
    audit = {(r.tenant_id, r.command_id, r.terminated) for r in await h.rows(applied_commands)}
    # B's own command found B's session already ended by B's forged end: 0
    assert audit == {(A, str(a_command_id), 1), (B, str(a_command_id), 0)}
    requests = {(r.tenant_id, r.command_id) for r in await h.rows(termination_requests)}
    assert requests == {(A, str(a_command_id)), (B, str(a_command_id))}


async def test_a_revocations_valid_until_never_moves_earlier(store: Store) -> None:
    """Issue 12: a later record (a re-revocation with an earlier end) cannot bring the
    tombstone forward, on either backend's upsert."""
    late, early = T0 + timedelta(days=30), T0 + timedelta(seconds=4)
    async with UnitOfWork(store) as uow:
        await store.save_revocations(uow.conn, [(A, HANDLE, late, "browser", T0, "admin")])
    async with UnitOfWork(store) as uow:
        await store.save_revocations(uow.conn, [(A, HANDLE, early, "browser", T0, "admin")])
    async with store.engine.connect() as conn:
        [row] = list(await conn.execute(select(revocations)))
    assert row.valid_until.replace(tzinfo=UTC) == late
    later = late + timedelta(days=1)
    async with UnitOfWork(store) as uow:
        await store.save_revocations(uow.conn, [(A, HANDLE, later, "browser", T0, "admin")])
    async with store.engine.connect() as conn:
        [row] = list(await conn.execute(select(revocations)))
    assert row.valid_until.replace(tzinfo=UTC) == later
    # and nothing is due before it
    h = Harness(store)
    await Sweeper(store, TOPICS).sweep(early + timedelta(hours=1))
    assert await published_revocations(store) == []
    assert len(await h.rows(revocations)) == 1


async def _poison(store: Store) -> None:
    """A database that refuses one value the contract accepts: a session named "poison"."""
    await refuse_rows(store, "sessions", "user_name", "poison")


async def _poisoned(store: Store) -> tuple[Harness, list[SessionCreated], SessionCreated]:
    """A harness on a `_poison`ed store, 20 sessions it stores, and one it refuses."""
    await _poison(store)
    good = [created(A, session_handle(A, f"c{i}")) for i in range(20)]
    bad = created(A, session_handle(A, "bad")).model_copy(update={"user_name": "poison"})
    return Harness(store), good, bad


async def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_applied(
    store: Store,
) -> None:
    h, good, bad = await _poisoned(store)
    events: list[SessionEvent] = [*good[:13], bad, *good[13:]]
    await h.ingest(*events)
    stored = {r.session_id for r in await h.rows(sessions)}
    assert stored == {e.session_id for e in good}
    [letter] = h.letters.sent
    assert letter.offset == 13
    assert letter.value == encode(bad)
    assert "the database refused it" in letter.reason
    # the position moved past every record: nothing is retried
    async with store.engine.connect() as conn:
        [position] = list(await conn.execute(text("SELECT next_offset FROM consumer_positions")))
    assert position[0] == 21
    # the next batch flows
    await h.ingest(created(A, session_handle(A, "after")))
    assert session_handle(A, "after") in {r.session_id for r in await h.rows(sessions)}


async def test_each_dead_letter_of_a_batch_the_database_refuses_is_sent_once(
    store: Store,
) -> None:
    # The batch is applied by halves until the refused record stands alone; a halving that
    # fails again must not have sent the dead letters it holds: the DLQ would hold them as
    # many times as the halving tried
    h, good, bad = await _poisoned(store)
    malformed = b'{"type": "session.created", '
    await h.ingest(malformed, *good[:12], malformed, bad, *good[12:], malformed)
    assert sorted(letter.offset for letter in h.letters.sent) == [0, 13, 14, 23]
    assert {r.session_id for r in await h.rows(sessions)} == {e.session_id for e in good}


def _command(by: str, *handles: str) -> TerminateSessions:
    return TerminateSessions(
        command_id=uuid.uuid4(),
        tenant_id=A,
        requested_by=by,
        requested_at=T0,
        reason=TerminationReason.admin,
        session_ids=list(handles),
    )


async def test_a_command_refused_as_it_is_read_counts_as_failed(store: Store) -> None:
    """Only a command given up in its application was counted failed: one dead-lettered as it
    was read (written in a newer schema_version by an admin API upgraded first) left the
    critical RegistryCommandsFailed silent, while the admin's 202 waited for ever (a review of
    the operators' view, stop 72). A refused event is no failed command."""
    h = Harness(store)
    newer = encode(_command("admin-1", session_handle(A, "c0"))).replace(
        b'"schema_version":3', b'"schema_version":4'
    )
    assert newer != encode(_command("admin-1", session_handle(A, "c0")))
    command = Rec(TOPICS.commands, 0, 0, b"k", newer)
    outcome = await h.ingest_records([command, h.record(b"{}")])
    assert outcome.dead_letters == 2
    assert outcome.commands_failed == 1


async def test_a_command_the_database_refuses_says_failed_and_the_batch_commits(
    store: Store,
) -> None:
    """A command dead-lettered in its batch stayed `pending` for ever before revision 1601.
    Recording it failed can be refused too (what made it fail is in its request row): the
    batch must still commit, and the command then stays `pending` as before."""
    from admin_api.adapters.terminations import request_status

    await refuse_rows(store, "applied_commands", "requested_by", "refused", "refused twice")
    await refuse_rows(store, "termination_requests", "requested_by", "refused twice")
    h = Harness(store)
    handles = [session_handle(A, f"c{i}") for i in range(3)]
    refused, twice, fine = (
        _command("refused", handles[0]),
        _command("refused twice", handles[1]),
        _command("admin-1", handles[2]),
    )
    await h.ingest(*(created(A, handle) for handle in handles))
    outcome = await h.ingest(refused, twice, fine)

    assert (outcome.dead_letters, outcome.commands_failed) == (2, 2)
    assert [letter.given_up for letter in h.letters.sent] == [refused, twice]
    async with store.engine.connect() as conn:
        states = {
            command.requested_by: await request_status(conn, A, str(command.command_id))
            for command in (refused, twice, fine)
        }
        position = (
            await conn.execute(
                text("SELECT next_offset FROM consumer_positions WHERE topic = :t"),
                {"t": TOPICS.commands},
            )
        ).scalar_one()
    assert states["refused"] is not None and states["admin-1"] is not None
    assert (states["refused"].status, states["refused"].terminated) == ("failed", 0)
    assert (states["admin-1"].status, states["admin-1"].terminated) == ("applied", 1)
    assert states["refused twice"] is None  # never recorded, as before 1601
    assert position == 3  # past every command: nothing is retried
    open_ones = {r.session_id for r in await h.rows(sessions, sessions.c.state == "open")}
    assert open_ones == {handles[0], handles[1]}


def test_connectivity_errors_are_not_blamed_on_data() -> None:
    from sqlalchemy.exc import DataError, IntegrityError, OperationalError

    assert caused_by_data(IntegrityError("x", {}, Exception("check")))
    assert caused_by_data(DataError("x", {}, Exception("nul")))
    assert not caused_by_data(OperationalError("x", {}, Exception("database is locked")))
    assert not caused_by_data(OSError("connection refused"))
    gone = OperationalError("x", {}, Exception("gone"), connection_invalidated=True)
    assert not caused_by_data(gone)


async def test_an_integer_sqlite_cannot_hold_is_a_refusal_and_python_overflowing_is_not(
    tmp_path: Path,
) -> None:
    """sqlite3 raises a bare OverflowError for an integer beyond 64 bits: the database refused
    the record. The same class raised by Python's own arithmetic (a date past year 9999) is a
    bug a record triggers, whose traceback the registry logs: it must not be called a
    refusal."""
    store = open_store(f"sqlite+aiosqlite:///{tmp_path / 'overflow.db'}")
    try:
        with pytest.raises(OverflowError) as refused:
            async with store.engine.begin() as conn:
                await conn.execute(text("CREATE TABLE t (x INTEGER)"))
                await conn.execute(text("INSERT INTO t VALUES (:x)"), {"x": 2**70})
    finally:
        await store.dispose()
    assert caused_by_data(refused.value)
    with pytest.raises(OverflowError) as overflowed:
        datetime.max.replace(tzinfo=UTC) + timedelta(days=1)
    assert not caused_by_data(overflowed.value)
    assert not caused_by_data(OverflowError("raised by no one"))


async def test_activity_alone_never_lists_and_is_deleted_within_the_bound(store: Store) -> None:
    """Issue 12 item 6: reports of made-up sessions are kept at most `activity_only_seconds`."""
    h = Harness(store, activity_only_seconds=600)
    made_up = [session_handle(A, f"random-{i}") for i in range(20)]
    await h.ingest(
        *(
            SessionActivity(event_id=uuid.uuid4(), occurred_at=T0, tenant_id=A, session_id=s)
            for s in made_up
        ),
        created(A, HANDLE),
        # activity ahead of its creation: kept, then the creation's policy applies
        SessionActivity(
            event_id=uuid.uuid4(), occurred_at=T0, tenant_id=A, session_id=session_handle(A, "x")
        ),
    )
    rows = {r.session_id: r for r in await h.rows(sessions)}
    for s in made_up:
        assert rows[s].expires_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=600)
    async with store.engine.connect() as conn:
        listed = await store.count_active(conn, _empty_filter(), A, T0)
    assert listed == 1
    await h.ingest(created(A, session_handle(A, "x"), at=T0 + timedelta(seconds=5)))
    outcome = await Sweeper(store, TOPICS).sweep(T0 + timedelta(seconds=599))
    assert outcome.deleted == 0
    outcome = await Sweeper(store, TOPICS).sweep(T0 + timedelta(seconds=600))
    assert outcome.deleted == 20
    assert outcome.expired == 0
    left = {r.session_id for r in await h.rows(sessions)}
    assert left == {HANDLE, session_handle(A, "x")}


async def test_an_end_without_a_creation_is_deleted_within_the_bound_with_its_history(
    store: Store,
) -> None:
    """Terminations (and expiries) of sessions never created made rows no sweep deleted, and
    history entries: read model growth for anyone producing them. They now go like activity-only
    rows, `activity_only_seconds` after the latest of their activity and their end, with their
    history; an end whose creation arrives in time is kept, revoked, and ends the session."""
    h = Harness(store, activity_only_seconds=600)
    ended = [session_handle(A, f"ended-{i}") for i in range(10)]
    expired = [session_handle(A, f"expired-{i}") for i in range(3)]
    active_later = session_handle(A, "ended-then-activity")  # bound from its later activity
    logged_out = session_handle(A, "logged-out")  # its creation comes late, within the bound
    await h.ingest(
        *(terminated(A, s, T0) for s in [*ended, active_later, logged_out]),
        *(
            SessionExpired(
                event_id=uuid.uuid4(),
                occurred_at=T0,
                tenant_id=A,
                session_id=s,
                reason=ExpiryReason.idle,
            )
            for s in expired
        ),
        SessionActivity(
            event_id=uuid.uuid4(),
            occurred_at=T0 + timedelta(seconds=100),
            tenant_id=A,
            session_id=active_later,
        ),
        created(A, HANDLE),
    )
    rows = {r.session_id: r for r in await h.rows(sessions)}
    for s in [*ended, *expired, logged_out]:
        assert rows[s].created_at is None
        assert rows[s].expires_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=600), s
    assert rows[active_later].expires_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=700)
    assert {rows[s].state for s in ended} == {"terminated"}
    assert {rows[s].state for s in expired} == {"expired"}
    history = {(r.session_id, r.type) for r in await h.rows(session_history)}
    assert {(s, "session.terminated") for s in ended} <= history
    assert {(s, "session.expired") for s in expired} <= history
    assert await published_revocations(store) == []  # never created: nothing to revoke
    async with store.engine.connect() as conn:
        assert await store.count_active(conn, _empty_filter(), A, T0) == 1  # HANDLE alone

    # the creation of a logged-out session arrives late but within the bound: kept, ended
    await h.ingest(created(A, logged_out, at=T0 - timedelta(minutes=1)))
    outcome = await Sweeper(store, TOPICS).sweep(T0 + timedelta(seconds=599))
    assert (outcome.deleted, outcome.expired) == (0, 0)
    outcome = await Sweeper(store, TOPICS).sweep(T0 + timedelta(seconds=600))
    assert (outcome.deleted, outcome.expired) == (len(ended) + len(expired), 0)
    assert {r.session_id for r in await h.rows(sessions)} == {HANDLE, logged_out, active_later}
    outcome = await Sweeper(store, TOPICS).sweep(T0 + timedelta(seconds=700))
    assert (outcome.deleted, outcome.expired) == (1, 0)

    [kept] = await h.rows(sessions, sessions.c.session_id == logged_out)
    assert (kept.state, kept.end_reason) == ("terminated", "security")
    [(key, value)] = await published_revocations(store)
    assert key == record_key(A, logged_out) and value is not None
    left = {(r.session_id, r.type) for r in await h.rows(session_history)}
    assert left == {
        (HANDLE, "session.created"),
        (logged_out, "session.created"),
        (logged_out, "session.terminated"),
    }
    assert {r.session_id for r in await h.rows(sessions)} == {HANDLE, logged_out}


async def test_records_dated_years_ahead_keep_a_made_up_session_no_longer_than_the_bound(
    store: Store,
) -> None:
    """An activity or an end of a session never created, dated years after the registry's
    clock, counts as `AHEAD_OF_STORE` (5 minutes) ahead: the row goes `activity_only_seconds`
    after that, not years later. Activity a little ahead (clocks differ) still counts whole."""
    h = Harness(store, activity_only_seconds=600)
    years = T0 + timedelta(days=3650)
    active, ended, skewed = (session_handle(A, n) for n in ("ahead-1", "ahead-2", "skewed"))
    await h.ingest(
        SessionActivity(event_id=uuid.uuid4(), occurred_at=years, tenant_id=A, session_id=active),
        terminated(A, ended, years),
        SessionActivity(
            event_id=uuid.uuid4(),
            occurred_at=T0 + timedelta(seconds=100),
            tenant_id=A,
            session_id=skewed,
        ),
    )
    rows = {r.session_id: r for r in await h.rows(sessions)}
    bound = T0 + AHEAD_OF_STORE + timedelta(seconds=600)
    assert rows[active].expires_at.replace(tzinfo=UTC) == bound
    assert rows[ended].expires_at.replace(tzinfo=UTC) == bound
    assert rows[skewed].expires_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=700)
    assert rows[active].last_activity_at.replace(tzinfo=UTC) == years  # the facts are kept
    assert (await Sweeper(store, TOPICS).sweep(bound - timedelta(seconds=1))).deleted == 1
    assert (await Sweeper(store, TOPICS).sweep(bound)).deleted == 2
    assert await h.rows(sessions) == []
    assert await h.rows(session_history) == []


async def test_old_records_read_late_keep_the_whole_bound_for_their_creation(
    store: Store,
) -> None:
    """A registry catching up reads an activity and an end hours old before their creations
    (other partitions): the rows are kept `activity_only_seconds` from when it stored them, not
    from their event times (else the sweeper would delete them on arrival and the creations
    would fold to other states than a replay in order gives)."""
    h = Harness(store, activity_only_seconds=600)
    h.now = T0 + timedelta(hours=3)
    early, ended = session_handle(A, "early-activity"), session_handle(A, "early-end")
    await h.ingest(
        SessionActivity(
            event_id=uuid.uuid4(),
            occurred_at=T0 + timedelta(minutes=1),
            tenant_id=A,
            session_id=early,
        ),
        terminated(A, ended, T0 + timedelta(minutes=1)),
    )
    rows = {r.session_id: r for r in await h.rows(sessions)}
    for s in (early, ended):
        assert rows[s].expires_at.replace(tzinfo=UTC) == h.now + timedelta(seconds=600), s
    assert (await Sweeper(store, TOPICS).sweep(h.now + timedelta(seconds=599))).deleted == 0

    await h.ingest(created(A, early), created(A, ended))
    rows = {r.session_id: r for r in await h.rows(sessions)}
    assert rows[early].last_activity_at.replace(tzinfo=UTC) == T0 + timedelta(minutes=1)
    assert (rows[ended].state, rows[ended].end_reason) == ("terminated", "security")
    assert (await Sweeper(store, TOPICS).sweep(h.now + timedelta(seconds=600))).deleted == 0


def _empty_filter() -> Any:
    from session_contracts.models import SessionFilter

    return SessionFilter()


async def test_an_expiry_before_the_sessions_deadline_is_counted_and_warned(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """Only the registry writes `session.expired`, once the deadline is a grace past. A
    producer allowed on the events topic can write one for any tenant's live session, which
    no termination then reaches while the platform still serves it (found by a review on
    2026-12-06; open: the fold gives the same rows in any order of the records, so it cannot
    refuse it by what came first). It is counted for the alert `RegistryExpiriesNotDue`; the
    registry's own expiries, and one dated past the deadline, are not."""
    h = Harness(store)
    live, short = session_handle(A, "live"), session_handle(A, "short")
    await h.ingest(created(A, live), created(A, short, max_s=60))  # short: due at T0 + 60 s
    h.now = T0 + timedelta(hours=1)

    def expiry(handle: str, at: datetime, event_id: uuid.UUID | None = None) -> SessionExpired:
        return SessionExpired(
            event_id=event_id or uuid.uuid4(),
            occurred_at=at,
            tenant_id=A,
            session_id=handle,
            reason=ExpiryReason.idle,
        )

    forged = await h.ingest(expiry(live, h.now))  # its deadline is 30 days on
    assert forged.expiries_not_due == 1
    assert [r for r in caplog.records if "before their deadline" in r.getMessage()]
    swept = await Sweeper(store, TOPICS).sweep(h.now)
    assert swept.expired == 1  # `short`, by the registry, which then reads its own record
    own = uuid.uuid5(EXPIRY_NAMESPACE, f"{A}\x1f{short}")
    assert (await h.ingest(expiry(short, T0 + timedelta(seconds=60), own))).expiries_not_due == 0
    late = await h.ingest(created(A, "x" * 43), expiry("x" * 43, T0 + timedelta(days=31)))
    assert late.expiries_not_due == 0  # dated past its deadline: as a replay of one is


async def test_a_second_creation_of_a_session_is_counted_and_warned(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    """A login service writes one `session.created` a session and sends it again only as it
    was. Another one comes from someone else: counted for the alert
    `RegistryCreationsContested`, whichever wins (the one the broker appended first; see the
    next test); the same creation sent again is not."""
    h = Harness(store)
    live = session_handle(A, "live")
    genuine = created(A, live)
    first = await h.ingest(genuine)
    assert first.creations_contested == 0
    assert (await h.ingest(genuine)).creations_contested == 0  # redelivered as it was
    forged = created(A, live, at=T0 - timedelta(seconds=1), max_s=1)
    assert (await h.ingest(forged)).creations_contested == 1
    assert [r for r in caplog.records if "of sessions created otherwise" in r.getMessage()]
    # and the genuine one read after it (another order) is counted as well
    other = session_handle(A, "other")
    await h.ingest(created(A, other, at=T0 - timedelta(seconds=1), max_s=1))
    assert (await h.ingest(created(A, other))).creations_contested == 1


async def test_the_creation_the_broker_appended_first_wins_whatever_the_order_of_reading(
    store: Store,
) -> None:
    """A second `session.created` of a live session, dated a second before the sign-in with a
    policy of one second, won the fold while the earliest creation did: the sweeper then
    expired, and signed the expiry of, a session the platform served, and no termination
    reached it (a review, 2026-12-06). The broker's append time decides now: a creation
    forged after the sign-in was appended after the real one, so it loses whether it is read
    after it, before it (another partition, a registry behind on the real one's), or in the
    same batch; the row keeps the time its creation was appended, and the sweeper has
    nothing to expire."""
    h = Harness(store)
    signed_in, forged_at = T0 + timedelta(seconds=1), T0 + timedelta(minutes=1)
    orders = {
        "genuine read first": [[0], [1]],
        "forged read first": [[1], [0]],
        "one batch, forged first": [[1, 0]],
    }
    for name, batches in orders.items():
        handle = session_handle(A, name)
        pairs = [
            (created(A, handle), signed_in),
            (created(A, handle, at=T0 - timedelta(seconds=1), max_s=1), forged_at),
        ]
        for batch in batches:
            await h.ingest_appended(*(pairs[i] for i in batch))
        [row] = await h.rows(sessions, sessions.c.session_id == handle)
        assert (row.max_session_seconds, row.created_at.replace(tzinfo=UTC)) == (30 * DAY, T0), name
        assert row.creation_appended_at.replace(tzinfo=UTC) == signed_in, name
    h.now = T0 + timedelta(hours=1)
    assert (await Sweeper(store, TOPICS).sweep(h.now)).expired == 0
    assert {row.state for row in await h.rows(sessions)} == {"open"}


async def test_a_row_without_an_append_time_keeps_its_creation(store: Store) -> None:
    """A row folded before revision 1401 (or from a topic its producers date) holds no append
    time: its creation was read before any still to come, so it counts as appended first, and
    a creation the broker appends later does not replace it. On a topic dated by its
    producers (`CreateTime`, which the registry warns of) nothing tells the records apart, and
    the earliest creation still wins: the limit security.md names."""
    h = Harness(store)
    before = session_handle(A, "folded before 1401")
    await h.ingest(created(A, before))  # no append time: as the release before stored it
    forged = created(A, before, at=T0 - timedelta(seconds=1), max_s=1)
    assert (await h.ingest_appended((forged, T0 + timedelta(minutes=1)))).creations_contested == 1
    [row] = await h.rows(sessions, sessions.c.session_id == before)
    assert (row.max_session_seconds, row.creation_appended_at) == (30 * DAY, None)

    producer_dated = session_handle(A, "createtime")
    await h.ingest(created(A, producer_dated))
    await h.ingest(created(A, producer_dated, at=T0 - timedelta(seconds=1), max_s=1))
    [row] = await h.rows(sessions, sessions.c.session_id == producer_dated)
    assert row.max_session_seconds == 1


async def test_a_creation_read_before_the_one_appended_first_is_not_expired_within_the_grace(
    store: Store,
) -> None:
    """A producer writes the forged creation to another partition, which the registry reads
    first: until the real one (appended earlier) is read, the forged one is the session's, and
    its deadline, dated back with a one-second policy, is long past. The sweeper waits the
    activity grace past a creation's append before it expires the session, so a registry less
    than that behind on the real one's partition never expires it; a session whose creation
    is the only one is expired once that grace has passed (a review, 2026-12-06)."""
    h = Harness(store)
    grace = timedelta(seconds=120)
    sweeper = Sweeper(store, TOPICS, activity_grace=grace)
    live, short = session_handle(A, "live"), session_handle(A, "short")
    signed_in, forged_at = T0 + timedelta(seconds=1), T0 + timedelta(seconds=2)
    forged = created(A, live, at=T0 - timedelta(hours=1), max_s=1)
    await h.ingest_appended((forged, forged_at))  # its partition read first
    assert (await sweeper.sweep(forged_at + timedelta(seconds=1))).expired == 0
    assert (await sweeper.sweep(forged_at + grace - timedelta(seconds=1))).expired == 0
    await h.ingest_appended((created(A, live), signed_in))  # the real one's partition, later
    assert (await sweeper.sweep(T0 + timedelta(hours=1))).expired == 0
    [row] = await h.rows(sessions, sessions.c.session_id == live)
    assert (row.state, row.max_session_seconds) == ("open", 30 * DAY)
    # one creation alone, dated back as far: expired once the grace past its append is over
    await h.ingest_appended((created(A, short, at=T0 - timedelta(hours=1), max_s=1), forged_at))
    assert (await sweeper.sweep(forged_at + grace - timedelta(seconds=1))).expired == 0
    assert (await sweeper.sweep(forged_at + grace)).expired == 1
    [row] = await h.rows(sessions, sessions.c.session_id == short)
    assert row.state == "expired"


async def test_an_admins_termination_under_a_forged_creation_is_revoked_once_the_real_one_comes(
    store: Store,
) -> None:
    """The admin ends the session while the forged creation read first is the session's: it
    was valid a second, so there was nothing to revoke. The real creation (appended earlier)
    replaces it, and the session could be valid for thirty days: the registry revokes it then
    (before a review, 2026-12-06, a termination was revoked only when it was new, and the
    gateways kept serving the session the admin ended)."""
    h = Harness(store)
    live = session_handle(A, "ended under a forged creation")
    forged = created(A, live, at=T0 - timedelta(hours=1), max_s=1)
    await h.ingest_appended((forged, T0 + timedelta(seconds=2)))
    await h.ingest(command(A, [live]))
    assert await published_revocations(store) == []  # nothing valid to revoke yet
    await h.ingest_appended((created(A, live), T0 + timedelta(seconds=1)))
    [(key, value)] = await published_revocations(store)
    assert key == record_key(A, live) and value is not None
    assert decode_revocation(value).valid_until == T0 + timedelta(days=30)
    # the same creation again changes nothing: no second record
    await h.ingest_appended((created(A, live), T0 + timedelta(seconds=3)))
    assert len(await published_revocations(store)) == 1


async def test_an_append_time_far_past_the_registrys_clock_holds_no_expiry(store: Store) -> None:
    """A broker whose clock runs a year ahead stamps a creation a year ahead: the hold (the
    grace past a creation's append) reaches no further than the grace and five minutes past
    the registry's clock, so such a session is expired as any other."""
    h = Harness(store)
    grace = timedelta(seconds=120)
    sweeper = Sweeper(store, TOPICS, activity_grace=grace)
    skewed = session_handle(A, "stamped a year ahead")
    short = created(A, skewed, at=T0, max_s=60)
    await h.ingest_appended((short, T0 + timedelta(days=365)))
    assert (await sweeper.sweep(T0 + timedelta(hours=1))).expired == 1
    [row] = await h.rows(sessions, sessions.c.session_id == skewed)
    assert row.state == "expired"


async def test_an_expired_session_its_platform_served_after_is_revoked_as_expired(
    store: Store,
) -> None:
    """Activity dated after a session's expiry says its platform served it after the registry
    expired it: reported less often than the grace, dropped or held by a gateway, or after a
    forged expiry. Expired, it was not listed and no termination ended it: a stolen session
    beyond every admin's reach until its maximum length (a review, stop 70). It is revoked
    now, as expired, once; not for activity dated before the expiry (read late), and not past
    its maximum length (nothing valid to revoke)."""
    h = Harness(store)
    served, read_late, too_old = (session_handle(A, n) for n in ("served", "late", "old"))

    def session(handle: str, max_s: int) -> SessionCreated:
        return created(A, handle, max_s=max_s).model_copy(
            update={"policy": SessionPolicy(max_session_seconds=max_s, idle_timeout_seconds=900)}
        )

    def expiry(handle: str, at: datetime, reason: ExpiryReason) -> SessionExpired:
        return SessionExpired(
            event_id=uuid.uuid4(), occurred_at=at, tenant_id=A, session_id=handle, reason=reason
        )

    def activity(handle: str, at: datetime) -> SessionActivity:
        return SessionActivity(
            event_id=uuid.uuid4(), occurred_at=at, tenant_id=A, session_id=handle
        )

    deadline = T0 + timedelta(seconds=900)
    await h.ingest(session(served, DAY), session(read_late, DAY), session(too_old, 600))
    await h.ingest(
        expiry(served, deadline, ExpiryReason.idle),
        expiry(read_late, deadline, ExpiryReason.idle),
        expiry(too_old, T0 + timedelta(seconds=600), ExpiryReason.max_length),
    )
    h.now = deadline + timedelta(minutes=10)
    assert await published_revocations(store) == []
    outcome = await h.ingest(
        activity(served, deadline + timedelta(minutes=5)),
        activity(read_late, deadline - timedelta(minutes=1)),
        activity(too_old, deadline + timedelta(minutes=5)),
    )
    assert outcome.served_after_expiry == 1  # session_registry_expired_sessions_served_total
    [(key, value)] = await published_revocations(store)
    assert key == record_key(A, served) and value is not None
    record = decode_revocation(value)
    assert (record.reason, record.revoked_at) == (ExpiryReason.idle, deadline)
    assert record.valid_until == T0 + timedelta(days=1)
    [row] = await h.rows(sessions, sessions.c.session_id == served)
    assert row.state == "expired"  # the expiry stays final; only gateways learn of it
    [kept] = await h.rows(revocations, revocations.c.session_id == served)
    assert as_utc(kept.valid_until) == T0 + timedelta(days=1)
    again = await h.ingest(activity(served, deadline + timedelta(minutes=8)))
    assert len(await published_revocations(store)) == 1 and again.served_after_expiry == 0
