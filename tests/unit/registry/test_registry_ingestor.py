"""The Ingestor over SQLite with synthetic records: once, fenced by positions, bad records parked.

Records are built by `session_registry.workload` (what the benchmarks and fault tests replay)
and handed over as a polled batch would be; the dead-letter port is a recording fake.
"""

from __future__ import annotations

import asyncio
import json
import logging
import sqlite3
import uuid
import zlib
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import TopicPartition
from hotloop_fakes import (
    NOW,
    TOPICS,
    FakeLog,
    FakeRecord,
    RecordingDeadLetters,
    RecordingIngestor,
    event_ids,
    expected_sessions,
    migrated_store,
    session_states,
    snapshot,
    stored_positions,
)
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.store import Store
from read_model.tables import applied_commands, outbox, revocations, session_history
from session_contracts.codec import (
    COMMANDS,
    EVENTS,
    MAX_RECORD_BYTES,
    DecodeError,
    RecordKind,
    decode,
    encode,
)
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_records import LOG_APPEND_TIME
from session_contracts.models import SessionPolicy, SessionRevoked, SessionType, TerminateSessions
from session_contracts.publisher import created_event
from session_registry.adapters.positions import save_positions
from session_registry.metrics import RegistryMetrics, reason_class
from session_registry.service_layer import ingest as ingest_module
from session_registry.service_layer.ingest import NOTICED_AHEAD, Ingestor
from session_registry.service_layer.projection import Outcome, Projector
from session_registry.workload import Workload
from session_registry.workload import records as workload_records

Batch = dict[TopicPartition, list[FakeRecord]]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    store = await migrated_store(tmp_path)
    yield store
    await store.dispose()


@pytest.fixture
def engine(store: Store) -> AsyncEngine:
    return store.engine


@pytest.fixture
def ingestor(store: Store) -> RecordingIngestor:
    return RecordingIngestor(store)


def batch_of(records: Sequence[FakeRecord]) -> Batch:
    """Records as `getmany` hands them over: per partition, in offset order."""
    batch: Batch = {}
    for record in records:
        batch.setdefault(TopicPartition(record.topic, record.partition), []).append(record)
    return batch


def synthetic(sessions: int = 30, **overrides: Any) -> tuple[FakeLog, list[FakeRecord]]:
    """A workload (reordered and duplicated records included) on two event partitions."""
    log = FakeLog()
    written = log.extend_events(Workload(sessions=sessions, activity=6, **overrides))
    return log, written


def reason_of(value: bytes | None, kind: RecordKind[Any] = EVENTS) -> str:
    """The decoder's own reason for refusing `value` (what dlq.reason must carry)."""
    with pytest.raises(DecodeError) as refused:
        decode(kind, value)
    return refused.value.reason


async def test_a_batch_is_applied_once_and_stores_its_positions(
    engine: AsyncEngine, ingestor: RecordingIngestor
) -> None:
    log, written = synthetic(duplicate_share=0.05, disorder_share=0.05)
    values = [r.value for r in written]
    assert len(set(values)) < len(values)  # the stream carries duplicates, as producers make

    outcome = await ingestor.ingest(batch_of(written))

    assert await session_states(engine) == expected_sessions(values)
    assert await stored_positions(engine) == log.ends()
    assert outcome.positions == log.ends()
    assert (outcome.events, outcome.skipped, outcome.dead_letters) == (len(written), 0, 0)
    assert outcome.sessions == len(expected_sessions(values))
    assert Counter(ingestor.applied) == event_ids(values)
    async with engine.connect() as conn:
        history = set((await conn.execute(select(session_history.c.event_id))).scalars())
        queued = (await conn.execute(select(outbox.c.topic, outbox.c.key, outbox.c.value))).all()
        revoked = set((await conn.execute(select(revocations.c.session_id))).scalars())
    lifecycle = [decode(EVENTS, v) for v in values]
    assert history == {str(e.event_id) for e in lifecycle if e.type != "session.activity"}
    # a logout of a session still valid is revoked through the outbox, once per session
    logged_out = {(e.tenant_id, e.session_id) for e in lifecycle if e.type == "session.terminated"}
    assert logged_out and revoked == {s for _, s in logged_out}
    assert sorted(key for _, key, _ in queued) == sorted(record_key(t, s) for t, s in logged_out)
    assert {topic for topic, _, _ in queued} == {TOPICS.revocations}
    assert all(SessionRevoked.model_validate_json(value).valid_until > NOW for *_, value in queued)
    assert ingestor.dead_letters.sent == []


async def test_a_redelivered_batch_changes_nothing(
    engine: AsyncEngine, ingestor: RecordingIngestor
) -> None:
    log, written = synthetic()
    await ingestor.ingest(batch_of(written))
    before = await snapshot(engine)
    applied = list(ingestor.applied)

    again = await ingestor.ingest(batch_of(written))

    assert await snapshot(engine) == before
    assert (again.events, again.sessions, again.published) == (0, 0, 0)
    assert again.skipped == len(written)
    assert again.positions == log.ends()
    assert ingestor.applied == applied
    # an older part of it (a lagging redelivery): the positions reported, which the loop
    # copies to Kafka, are the stored ones, never older
    stale = await ingestor.ingest(batch_of([r for r in written if r.offset < 10]))
    assert stale.skipped == sum(r.offset < 10 for r in written)
    assert stale.positions == log.ends()
    assert await snapshot(engine) == before


async def test_a_batch_straddling_the_stored_position_applies_only_what_is_new(
    engine: AsyncEngine, ingestor: RecordingIngestor
) -> None:
    log, written = synthetic(duplicate_share=0.0)
    first = [r for r in written if r.offset < 40]
    await ingestor.ingest(batch_of(first))
    redelivered = [r for r in written if r.offset >= 20]  # 20..39 again, then the rest

    outcome = await ingestor.ingest(batch_of(redelivered))

    assert outcome.skipped == sum(20 <= r.offset < 40 for r in written)
    assert outcome.events == sum(r.offset >= 40 for r in written)
    assert Counter(ingestor.applied) == event_ids(r.value for r in written)  # each once
    assert await session_states(engine) == expected_sessions(r.value for r in written)
    assert await stored_positions(engine) == log.ends()


S1 = session_handle("tenant-0", "s-1")
KEY = record_key("tenant-0", S1)
UNKNOWN_TYPE = json.dumps(
    {
        "type": "session.renamed",
        "schema_version": 3,
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2030-01-01T00:00:00Z",
        "tenant_id": "tenant-0",
        "session_id": S1,
    }
).encode()
MALFORMED = {
    "not-json": b'{"type": "session.created",',
    "unknown-type": UNKNOWN_TYPE,
    "no-value": None,
    "not-an-object": b"[1, 2, 3]",
    "missing-field": json.dumps({"type": "session.activity", "schema_version": 3}).encode(),
    "too-large": b'{"pad": "' + b"x" * MAX_RECORD_BYTES + b'"}',
}


@pytest.mark.parametrize("value", list(MALFORMED.values()), ids=list(MALFORMED))
async def test_a_malformed_record_goes_to_the_dead_letter_sink_with_its_reason(
    engine: AsyncEngine, ingestor: RecordingIngestor, value: bytes | None
) -> None:
    log = FakeLog()
    record = log.append(TOPICS.events, 3, value, KEY, (("traceparent", b"00-abc-01"),))

    outcome = await ingestor.ingest(batch_of([record]))

    [letter] = ingestor.dead_letters.sent
    assert letter.reason == reason_of(value)
    assert (letter.topic, letter.partition, letter.offset) == (TOPICS.events, 3, 0)
    assert (letter.key, letter.value, letter.headers) == (KEY, value, record.headers)
    assert outcome.dead_letters == 1 and outcome.events == 0
    assert await stored_positions(engine) == {(TOPICS.events, 3): 1}  # the partition flows on
    assert await session_states(engine) == {}
    # redelivered: below the stored position, so not parked a second time
    await ingestor.ingest(batch_of([record]))
    assert len(ingestor.dead_letters.sent) == 1


async def test_decoding_a_batch_lets_the_batch_being_written_go_on_within_a_millisecond(
    ingestor: RecordingIngestor,
) -> None:
    # the writer of the previous batch resumes at each yield: each of its round trips to the
    # database waits for one short slice of decoding (250 records: under a millisecond), not
    # for thousands of records
    _, written = synthetic(sessions=200)
    batch = batch_of(written)
    resumed: list[int] = []

    async def writer() -> None:
        while True:
            resumed.append(0)
            await asyncio.sleep(0)

    running = asyncio.create_task(writer())
    try:
        decoded = await ingestor.decode_yielding(batch)
    finally:
        running.cancel()
    assert len(written) > 1000
    assert len(resumed) * 250 >= len(written)
    expected = ingestor.decode(batch)
    assert decoded.keys() == expected.keys()
    for tp, part in decoded.items():
        assert part.offsets == expected[tp].offsets
        assert part.messages == expected[tp].messages


async def test_the_reason_names_what_is_wrong(ingestor: RecordingIngestor) -> None:
    log = FakeLog()
    record = log.append(TOPICS.events, 0, UNKNOWN_TYPE)
    await ingestor.ingest(batch_of([record]))
    assert [letter.reason for letter in ingestor.dead_letters.sent] == [
        "unknown event type 'session.renamed'"
    ]


async def test_a_batch_mixing_good_and_bad_records_applies_the_good_ones(
    engine: AsyncEngine, ingestor: RecordingIngestor
) -> None:
    log = FakeLog()
    bad_values = list(MALFORMED.values())
    records: list[FakeRecord] = []
    for i, (key, value) in enumerate(workload_records(Workload(sessions=12, activity=4))):
        partition = zlib.crc32(key) % 2
        records.append(log.append(TOPICS.events, partition, value, key))
        if i % 9 == 4:  # now and then a bad one between them
            bad = bad_values[(i // 9) % len(bad_values)]
            records.append(log.append(TOPICS.events, partition, bad, key))
    bad_records = [r for r in records if r.value in bad_values]
    good_records = [r for r in records if r not in bad_records]
    assert len(bad_records) >= 5

    outcome = await ingestor.ingest(batch_of(records))

    assert await session_states(engine) == expected_sessions(r.value for r in good_records)
    assert Counter(ingestor.applied) == event_ids(r.value for r in good_records)
    sent = ingestor.dead_letters.sent
    assert sorted((d.partition, d.offset) for d in sent) == sorted(
        (r.partition, r.offset) for r in bad_records
    )
    assert all(d.reason == reason_of(d.value) for d in sent)
    assert (outcome.events, outcome.dead_letters) == (len(good_records), len(bad_records))
    assert await stored_positions(engine) == log.ends()


async def test_a_failing_dead_letter_sink_rolls_the_batch_back(
    engine: AsyncEngine, ingestor: RecordingIngestor
) -> None:
    log, written = synthetic(sessions=5)
    bad = log.append(TOPICS.events, 0, b"not json")
    empty = await snapshot(engine)
    ingestor.dead_letters.fail_with = OSError("broker unreachable")

    with pytest.raises(OSError):
        await ingestor.ingest(batch_of([*written, bad]))

    # nothing moved past the record that is not yet durable on the DLQ, nor anything else
    assert await snapshot(engine) == empty
    ingestor.dead_letters.fail_with = None
    await ingestor.ingest(batch_of([*written, bad]))
    assert [(d.offset, d.value) for d in ingestor.dead_letters.sent] == [(bad.offset, b"not json")]
    assert await session_states(engine) == expected_sessions(r.value for r in written)
    assert await stored_positions(engine) == log.ends()


async def test_a_termination_command_is_applied_once_however_often_delivered(
    engine: AsyncEngine, ingestor: RecordingIngestor, caplog: pytest.LogCaptureFixture
) -> None:
    log, written = synthetic(sessions=8, terminated_share=0.0, duplicate_share=0.0)
    await ingestor.ingest(batch_of(written))
    states = await session_states(engine)
    tenant, targets = "tenant-1", sorted(s for (t, s) in states if t == "tenant-1")[:2]
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id=tenant,
        requested_by="admin-1",
        session_ids=targets,
    )
    command_key = record_key(tenant, str(command.command_id))
    first = log.append(TOPICS.commands, 0, encode(command), command_key)
    bad = log.append(TOPICS.commands, 0, encode(command).replace(b"sessions.terminate", b"x"))
    again = log.append(TOPICS.commands, 0, encode(command), command_key)  # re-sent

    with caplog.at_level(logging.DEBUG, logger="session_registry.service_layer.terminations"):
        outcome = await ingestor.ingest(batch_of([first, bad, again]))

    assert (outcome.commands, outcome.terminated, outcome.dead_letters) == (1, 2, 1)
    # the log lines carry the tenant, the command id and each ended session's handle as fields
    logged = [r for r in caplog.records if r.name.endswith("terminations")]
    assert {(r.tenant_id, r.command_id) for r in logged} == {(tenant, str(command.command_id))}  # type: ignore[attr-defined]
    assert {getattr(r, "session_handle", None) for r in logged} == {*targets, None}
    assert ingestor.dead_letters.sent[0].reason == reason_of(bad.value, COMMANDS)
    after = await session_states(engine)
    assert {s for (t, s), st in after.items() if st.state == "terminated"} == set(targets)
    assert all(after[(tenant, s)].ended_by == "admin-1" for s in targets)
    untouched = {k: v for k, v in states.items() if k[1] not in targets}
    assert {k: after[k] for k in untouched} == untouched
    async with engine.connect() as conn:
        queued = (await conn.execute(select(outbox.c.topic, outbox.c.key))).all()
        commands = (await conn.execute(select(applied_commands.c.command_id))).scalars().all()
    assert sorted(queued) == sorted(
        [(TOPICS.events, record_key(tenant, s)) for s in targets]
        + [(TOPICS.revocations, record_key(tenant, s)) for s in targets]
    )
    assert commands == [str(command.command_id)]

    # delivered once more after a crash (a new offset, the same command id): nothing happens
    before = await snapshot(engine)
    later = log.append(TOPICS.commands, 0, encode(command), command_key)
    redelivered = await ingestor.ingest(batch_of([later]))
    assert (redelivered.commands, redelivered.terminated) == (0, 0)
    assert {k: v for k, v in (await snapshot(engine)).items() if k != "consumer_positions"} == {
        k: v for k, v in before.items() if k != "consumer_positions"
    }


def _created(tenant: str, credential: str, version: int = 3) -> bytes:
    """A `session.created` of the session `credential` names, as a producer of `version` wrote
    it (v1 carried the credential as its session id)."""
    event = created_event(
        tenant_id=tenant,
        credential=credential,
        user_id="u-1",
        user_name="Ada",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        policy=SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=600),
        occurred_at=NOW,
    )
    if version == 3:
        return encode(event)
    body = {**json.loads(encode(event)), "schema_version": 1, "session_id": credential}
    return json.dumps(body).encode()


async def test_records_keyed_otherwise_are_applied_counted_and_logged_without_their_key(
    engine: AsyncEngine, ingestor: RecordingIngestor, caplog: pytest.LogCaptureFixture
) -> None:
    # the key routes only: each record is applied by its value, and the ones not keyed as the
    # contract keys them are counted, so the operator sees a producer keying by something else
    log = FakeLog()

    def handle(credential: str) -> str:
        return session_handle("acme", credential)

    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-1",
        session_ids=[handle("cookie-gone")],
    )
    command_id = str(command.command_id)
    v1_command = json.dumps({**json.loads(encode(command)), "schema_version": 1}).encode()
    contract = [
        log.append(
            TOPICS.events, 0, _created("acme", "cookie-1"), record_key("acme", handle("cookie-1"))
        ),
        # a v1 producer keyed by the session id (the credential): v1's key, not counted
        log.append(TOPICS.events, 0, _created("acme", "cookie-2", 1), b"cookie-2"),
        log.append(TOPICS.commands, 0, encode(command), record_key("acme", command_id)),
        log.append(TOPICS.commands, 1, v1_command, command_id.encode()),  # v1's command key
    ]
    otherwise = [
        # another tenant's key, no key, a key naming another session
        log.append(
            TOPICS.events, 1, _created("acme", "cookie-3"), record_key("other", handle("cookie-3"))
        ),
        log.append(TOPICS.events, 1, _created("acme", "cookie-4"), None),
        log.append(
            TOPICS.events, 1, _created("acme", "cookie-5"), record_key("acme", handle("cookie-1"))
        ),
        # a v3 record keyed by its credential, as v1 keyed it: credentials on the topic
        log.append(TOPICS.events, 1, _created("acme", "cookie-secret-6"), b"cookie-secret-6"),
        # a v1 record keyed by a credential that is not its own
        log.append(TOPICS.events, 1, _created("acme", "cookie-7", 1), b"cookie-2"),
        log.append(TOPICS.commands, 1, encode(command), command_id.encode()),  # v3, v1's key
    ]

    with caplog.at_level(logging.WARNING, logger="session_registry.service_layer.ingest"):
        outcome = await ingestor.ingest(batch_of(contract + otherwise))

    assert (outcome.events, outcome.commands, outcome.dead_letters) == (7, 1, 0)
    states = await session_states(engine)
    assert {s for (t, s) in states if t == "acme"} >= {
        handle(f"cookie-{n}") for n in (1, 2, 3, 4, 5, 7)
    } | {handle("cookie-secret-6")}
    assert outcome.miskeyed == {"event": 5, "command": 1}
    (warning,) = [r.getMessage() for r in caplog.records if "not keyed" in r.getMessage()]
    assert "6 record(s)" in warning
    assert any(f"{r.topic}:{r.partition}:{r.offset})" in warning for r in otherwise)
    assert "cookie-secret-6" not in caplog.text  # a key may be a credential: never logged


def test_the_registrys_metrics_count_records_keyed_otherwise_by_record() -> None:
    metrics = RegistryMetrics()
    metrics.committed(0.01, {}, [], 0, 0, 0, {"event": 3, "command": 1})
    metrics.committed(0.01, {}, [], 0, 0, 0, {"event": 2})
    sample = metrics.registry.get_sample_value
    assert sample("session_registry_records_miskeyed_total", {"record": "event"}) == 5
    assert sample("session_registry_records_miskeyed_total", {"record": "command"}) == 1


def test_a_creation_dated_after_the_brokers_append_time_is_created_then(
    ingestor: RecordingIngestor, caplog: pytest.LogCaptureFixture
) -> None:
    appended = NOW - timedelta(minutes=1)  # NOW: what each event below is dated
    millis = int(appended.timestamp() * 1000)

    def record(offset: int, value: bytes, timestamp_type: int) -> FakeRecord:
        return FakeRecord(TOPICS.events, 0, offset, None, value, (), millis, timestamp_type)

    later = json.loads(_created("acme", "cookie-5"))
    later.update(type="session.activity", event_id=str(uuid.uuid4()))
    for field in ("user_id", "user_name", "session_type", "ip_address", "policy"):
        later.pop(field)
    batch = batch_of(
        [
            record(0, _created("acme", "cookie-1"), LOG_APPEND_TIME),  # dated ahead: clamped
            record(1, json.dumps(later).encode(), LOG_APPEND_TIME),  # activity: as dated
            record(2, _created("acme", "cookie-2"), 0),  # CreateTime: its producer's date
        ]
    )
    with caplog.at_level(logging.WARNING, logger="session_registry.service_layer.ingest"):
        (part,) = ingestor.decode(batch).values()
        ingestor.decode(batch)
    assert [m.occurred_at for m in part.messages] == [appended, NOW, NOW]  # type: ignore[union-attr]
    (warning,) = [r.getMessage() for r in caplog.records if "CreateTime" in r.getMessage()]
    assert TOPICS.events in warning and "message.timestamp.type=LogAppendTime" in warning

    on_time = record(0, _created("acme", "cookie-3"), LOG_APPEND_TIME)
    on_time = FakeRecord(**{**vars(on_time), "timestamp": millis + 120_000})  # after its date
    (part,) = ingestor.decode(batch_of([on_time])).values()
    assert [m.occurred_at for m in part.messages] == [NOW]  # type: ignore[union-attr]


def test_an_append_time_no_datetime_holds_leaves_the_creation_as_dated(
    ingestor: RecordingIngestor,
) -> None:
    """Defensive: the broker never lets a producer choose an append time (it refuses one on a
    CreateTime topic, Kafka 4.1's LogValidator, and stamps its own on a LogAppendTime one), but
    one no datetime holds raised out of the decode, which stops the consumer loop."""
    records = [
        FakeRecord(TOPICS.events, 0, n, None, _created("acme", f"far-{n}"), (), millis, 1)
        for n, millis in enumerate((253_402_300_800_000, -62_135_596_801_000, 2**62))
    ]
    assert LOG_APPEND_TIME == 1
    (part,) = ingestor.decode(batch_of(records)).values()
    assert [m.occurred_at for m in part.messages] == [NOW] * 3  # type: ignore[union-attr]


async def test_a_batch_counts_its_creations_dated_ahead_once_and_says_who_dated_its_events(
    ingestor: RecordingIngestor, caplog: pytest.LogCaptureFixture
) -> None:
    def record(offset: int, credential: str, appended: timedelta, kind: int) -> FakeRecord:
        millis = int((NOW + appended).timestamp() * 1000)  # each creation is dated NOW
        value = _created("acme", credential)
        return FakeRecord(TOPICS.events, 0, offset, None, value, (), millis, kind)

    broker_dated = [
        record(0, "cookie-1", -timedelta(minutes=1), LOG_APPEND_TIME),  # dated ahead
        record(1, "cookie-2", timedelta(seconds=1), LOG_APPEND_TIME),  # appended after
        # a clock a second ahead or less (NTP skew): clamped, not counted
        record(2, "cookie-3", -NOTICED_AHEAD, LOG_APPEND_TIME),
    ]
    with caplog.at_level(logging.WARNING, logger=ingest_module.__name__):
        outcome = await ingestor.ingest(batch_of(broker_dated))
    assert (outcome.dated_ahead, outcome.producer_dated) == (1, False)
    # the runbook starts from the session: the log names it, and where its record is (it named
    # none, and the alert's runbook asked for a session no line gave: a review, stop 71)
    first = f"tenant acme, session {session_handle('acme', 'cookie-1')}, at {TOPICS.events}:0:0"
    assert outcome.first_dated_ahead == first
    (said,) = [r.getMessage() for r in caplog.records if "dated after the broker" in r.getMessage()]
    assert said.startswith("1 session.created record(s) of this batch") and first in said
    again = await ingestor.ingest(batch_of(broker_dated))  # redelivered: skipped, not recounted
    assert (again.skipped, again.dated_ahead, again.producer_dated) == (3, 0, False)
    # a topic changed to LogAppendTime later: its older records are its producers'
    producer = record(3, "cookie-4", -timedelta(minutes=1), 0)
    later = await ingestor.ingest(batch_of([producer]))
    assert (later.dated_ahead, later.producer_dated) == (0, True)

    metrics = RegistryMetrics()
    for done in (outcome, again, later):
        metrics.committed(0.01, {}, [], 0, 0, 0, {}, done.dated_ahead, done.producer_dated)
    sample = metrics.registry.get_sample_value
    assert sample("session_registry_creations_dated_ahead_total") == 1
    assert sample("session_registry_events_producer_dated") == 1
    metrics.committed(0.01, {}, [], 0, 0, 0, {}, 0, None)  # commands only: as it was
    assert sample("session_registry_events_producer_dated") == 1
    metrics.committed(0.01, {}, [], 0, 0, 0, {}, 0, False)
    assert sample("session_registry_events_producer_dated") == 0


class _Fussy(Projector):
    """A projection with a bug one record triggers (a session named "boom" raises `error`)."""

    def __init__(self, error: Exception) -> None:
        super().__init__(TOPICS)
        self.error = error

    async def apply(self, uow: Any, events: Any, *rest: Any, **named: Any) -> Outcome:
        if any(getattr(event, "user_name", None) == "boom" for event in events):
            raise self.error
        return await super().apply(uow, events, *rest, **named)


async def test_a_record_that_trips_a_python_error_is_dead_lettered_and_the_rest_applied(
    store: Store, engine: AsyncEngine
) -> None:
    # one bad record never stops the registry, whatever it trips: applied again the batch
    # would fail the same way, so it is split until that record stands alone
    letters = RecordingDeadLetters()
    ingestor = Ingestor(store, _Fussy(ValueError("boom")), "fussy", letters, lambda: NOW)
    boom = json.loads(_created("acme", "cookie-boom"))
    boom["user_name"] = "boom"
    log = FakeLog()
    values = [_created("acme", f"cookie-{n}") for n in range(6)]
    values[2:2] = [b"not json"]
    values[4:4] = [json.dumps(boom).encode()]
    records = [log.append(TOPICS.events, 0, value) for value in values]
    outcome = await ingestor.ingest(batch_of(records))

    assert [(d.offset, d.reason) for d in letters.sent] == [
        (2, reason_of(b"not json")),
        (4, "the registry could not apply it: ValueError: boom"),
    ]
    assert outcome.dead_letters == 2 and reason_class(letters.sent[1].reason) == "registry_error"
    states = await session_states(engine)
    assert {s for _, s in states} == {session_handle("acme", f"cookie-{n}") for n in range(6)}
    assert await stored_positions(engine, "fussy") == log.ends()


async def test_a_batch_applied_by_halves_still_counts_names_and_gauges_its_creations(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    # split around a record that fails alone, a batch lost its creations dated ahead: neither
    # counted (RegistryCreationsDatedAhead) nor named (a review, stop 71)
    ingestor = Ingestor(
        store, _Fussy(ValueError("boom")), "fussy", RecordingDeadLetters(), lambda: NOW
    )
    boom = json.loads(_created("acme", "cookie-boom"))
    boom["user_name"] = "boom"
    ahead = int((NOW - timedelta(minutes=1)).timestamp() * 1000)  # appended before its date
    values = [_created("acme", f"cookie-{n}") for n in range(4)]
    values[3:3] = [json.dumps(boom).encode()]
    records = [
        FakeRecord(TOPICS.events, 0, n, None, value, (), ahead, LOG_APPEND_TIME)
        for n, value in enumerate(values)
    ]
    with caplog.at_level(logging.WARNING, logger=ingest_module.__name__):
        outcome = await ingestor.ingest(batch_of(records))
    assert (outcome.dead_letters, outcome.dated_ahead) == (1, 4)  # the boom record not counted
    assert outcome.producer_dated is False  # the broker dated them: said by the halves too
    said = [r.getMessage() for r in caplog.records if "dated after the broker" in r.getMessage()]
    assert said and all("tenant acme, session " in line for line in said)


async def test_an_error_of_the_network_or_the_database_is_waited_out_not_dead_lettered(
    store: Store, engine: AsyncEngine
) -> None:
    for error in (ConnectionResetError("peer gone"), TimeoutError("slow")):
        letters = RecordingDeadLetters()
        ingestor = Ingestor(store, _Fussy(error), "fussy", letters, lambda: NOW)
        boom = json.loads(_created("acme", "cookie-boom"))
        boom["user_name"] = "boom"
        record = FakeRecord(TOPICS.events, 0, 0, None, json.dumps(boom).encode())
        with pytest.raises(type(error)):
            await ingestor.ingest(batch_of([record]))
        assert letters.sent == [] and await stored_positions(engine, "fussy") == {}


async def test_a_transaction_run_again_sends_its_dead_letters_once(
    engine: AsyncEngine, ingestor: RecordingIngestor, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The dead letters are sent inside the batch's transaction, before its positions are
    stored; a transaction run again (the SQLite lock held by another writer, a PostgreSQL
    deadlock) sent them again: duplicates on the DLQ (found by a review, 2026-12-06). The
    batch re-read after a failure that reached the caller sends none again either."""
    real = save_positions
    failures = [
        OperationalError("UPDATE", {}, sqlite3.OperationalError("database is locked")),
        OSError("the database went away"),  # not retried: the caller re-reads the batch
    ]

    async def refused_first(*args: Any) -> None:
        if failures:
            raise failures.pop(0)
        await real(*args)

    monkeypatch.setattr(ingest_module, "save_positions", refused_first)
    log, written = synthetic(sessions=3)
    bad = log.append(TOPICS.commands, 0, b'{"not": "a command"}', b"acme/x")
    with pytest.raises(OSError, match="went away"):
        await ingestor.ingest(batch_of([*written, bad]))
    assert len(ingestor.dead_letters.sent) == 1  # the lock's retry sent none again
    await ingestor.ingest(batch_of([*written, bad]))
    assert [(d.topic, d.offset) for d in ingestor.dead_letters.sent] == [(TOPICS.commands, 0)]
    assert await stored_positions(engine) == log.ends()
    # applied and committed: a later batch of the partition forgets it
    nothing = log.append(TOPICS.commands, 0, b"also not json", b"acme/y")
    await ingestor.ingest(batch_of([nothing]))
    assert len(ingestor.dead_letters.sent) == 2 and ingestor._letters_sent == {
        (TOPICS.commands, 0, nothing.offset)
    }
