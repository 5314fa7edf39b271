"""`session-registry dlq list|show|redrive`: filter the dead letters, show one, put them back
(upcast, re-keyed, applied once however often redriven)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer, TopicPartition
from aiokafka.admin.records_to_delete import RecordsToDelete
from aiokafka.errors import KafkaError
from registry_helpers import (
    NOW,
    StartRegistry,
    activity,
    created,
    logout,
    read_topic,
    session_rows,
    sid,
    table_rows,
)
from sqlalchemy.ext.asyncio import AsyncEngine
from sre_cli import cli, cli_env

from fresh_topics import connection
from migrated import MigratedCopies
from read_model.database import make_engine, open_store
from read_model.tables import applied_commands, revocations, session_history, sessions
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_admin, new_producer
from session_contracts.models import SCHEMA_VERSION, TerminateSessions
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import CountingDeadLetters, DeadLetter
from session_registry.adapters.partitions import partition_for_key
from session_registry.service_layer import dead_letter_tools
from session_registry.service_layer.expiry import Sweeper
from session_registry.service_layer.ingest import Ingestor
from session_registry.service_layer.projection import Projector
from unclosed_clients import no_kafka_client_left_unclosed

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


def _v1_created(credential: str) -> bytes:
    """A contract v1 `session.created`: its session id is the credential itself."""
    payload = json.loads(encode(created(credential)))
    payload.update(schema_version=1, session_id=credential)
    return json.dumps(payload).encode()


async def _park(
    producer: AIOKafkaProducer,
    topics: Topics,
    source: str,
    key: bytes,
    value: bytes,
    why: str,
    at: tuple[int, int] = (0, 7),
) -> None:
    """A dead letter as a registry writes it (a registry of an older release, say), of the
    record read at `at` (partition, offset)."""
    letter = DeadLetter(source, *at, key, value, (("trace-id", b"t-1"),), why)
    await producer.send_and_wait(
        topics.dead_letters, value, key=key, headers=letter.dlq_headers("old-registry")
    )


@pytest.mark.slow
async def test_dlq_list_show_and_redrive(
    start_registry: StartRegistry,
    send: Send,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
) -> None:
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(consumer_group=group)
    await send(created("s2"))
    newer = json.loads(encode(created("from-the-future")))
    newer["schema_version"] = SCHEMA_VERSION + 1
    # one key, so one partition: the registry dead-letters them in this order (records of two
    # partitions reach the dead-letter topic in whichever order their batches are applied)
    # (a contract key: `dlq list` reads a tenant from no other, a v1 key being the credential)
    one_key = record_key("acme", sid("x"))
    await send((one_key, b'{"type": "session.created", '), topic=topics.events)
    await send((one_key, json.dumps(newer).encode()), topic=topics.events)
    await registry.wait_until_idle(60)
    refused = "the database refused it: DataError: value too long"  # since fixed, say
    await _park(producer, topics, topics.events, b"cred-v1", _v1_created("cred-v1"), refused)
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-1",
        session_ids=[sid("s2")],
    )
    command_key = record_key("acme", str(command.command_id))
    await _park(producer, topics, topics.commands, command_key, encode(command), refused)
    touch = activity("s2", NOW - timedelta(seconds=5))
    await _park(producer, topics, topics.events, b"acme/s2", encode(touch), refused)
    env = cli_env(kafka_bootstrap, topics, db_url, group)

    # list, filtered
    every = (await cli(env, "dlq", "list", "--json")).lines()
    assert [(d["offset"], d["type"]) for d in every] == [
        (0, None),
        (1, "session.created"),
        (2, "session.created"),
        (3, "sessions.terminate"),
        (4, "session.activity"),
    ]
    assert every[0]["consumer"] == group and "malformed JSON" in every[0]["reason"]
    assert every[2]["schema_version"] == 1 and every[2]["source"]["topic"] == topics.events

    async def offsets(*args: str) -> list[int]:
        return [d["offset"] for d in (await cli(env, "dlq", "list", "--json", *args)).lines()]

    assert await offsets("--reason", "MALFORMED") == [0]
    assert await offsets("--reason", "database refused") == [2, 3, 4]
    assert await offsets("--type", "session.created", "--tenant", "acme") == [1, 2]
    assert await offsets("--type", "session.activity", "--reason", "newer") == []
    tomorrow = (NOW + timedelta(days=1)).isoformat()
    yesterday = (NOW - timedelta(days=1)).isoformat()
    assert await offsets("--since", tomorrow) == []
    assert await offsets("--since", yesterday, "--until", tomorrow) == [0, 1, 2, 3, 4]
    human = await cli(env, "dlq", "list", "--tenant", "acme")
    assert "5 dead letters" in human.err  # the v1 record's tenant comes from its body

    # show: decoded now (upcast to the handle); the credential only with --raw
    shown = await cli(env, "dlq", "show", "2")
    detail = json.loads(shown.out)
    assert detail["decoded_now"]["session_id"] == sid("cred-v1")
    assert detail["decoded_now"]["schema_version"] == SCHEMA_VERSION
    assert detail["headers"] == {"trace-id": "t-1"}
    assert "cred-v1" not in shown.out
    assert "cred-v1" in (await cli(env, "dlq", "show", "2", "--raw")).out
    assert (
        "newer than this consumer reads"
        in json.loads((await cli(env, "dlq", "show", "1")).out)["refused_now"]
    )
    missing = await cli(env, "dlq", "show", "99", code=1)
    assert "no dead letter at offset 99" in missing.err

    # dry run: what would happen, nothing sent
    before = len(await read_topic(kafka_bootstrap, topics.events))
    plan = {
        p["offset"]: p for p in (await cli(env, "dlq", "redrive", "--dry-run", "--json")).lines()
    }
    assert [plan[o]["action"] for o in range(5)] == [
        "refused",
        "refused",
        "redrive",
        "redrive",
        "redrive",
    ]
    v1_key = record_key("acme", sid("cred-v1"))
    assert plan[2]["upcast_from"] == 1 and plan[2]["session_id"] == sid("cred-v1")
    assert plan[2]["to"] == {
        "topic": topics.events,
        "partition": partition_for_key(v1_key, [0, 1, 2]),
    }
    assert plan[3]["to"]["topic"] == topics.commands
    assert len(await read_topic(kafka_bootstrap, topics.events)) == before

    # redriven twice (the second before the registry read the first): applied once
    first = await cli(env, "dlq", "redrive")
    assert "redrove 3, skipped 0 (applied already, repeated" in first.err
    assert "redriven before), 2 still refused" in first.err
    await cli(env, "dlq", "redrive")
    await registry.wait_until_idle(60)
    rows = await session_rows(registry)
    assert rows[sid("cred-v1")]["created_at"] is not None
    assert rows[sid("s2")]["state"] == "terminated" and rows[sid("s2")]["end_reason"] == "admin"
    assert len(await table_rows(db_url, applied_commands, [applied_commands.c.command_id])) == 1
    history = await table_rows(db_url, session_history, [session_history.c.event_id])
    assert [h["type"] for h in history if h["session_id"] == sid("cred-v1")] == ["session.created"]
    revoked = [
        r
        for r in await read_topic(kafka_bootstrap, topics.revocations)
        if r.key == record_key("acme", sid("s2")) and r.value is not None
    ]
    assert len(revoked) == 1

    redriven = [
        r
        for r in await read_topic(kafka_bootstrap, topics.events)
        if "dlq.redriven.from" in dict(r.headers)
    ]
    assert {r.key for r in redriven} == {v1_key, record_key("acme", sid("s2"))}
    assert all(json.loads(r.value)["schema_version"] == SCHEMA_VERSION for r in redriven)
    assert all(b"cred-v1" not in r.value for r in redriven)
    assert all(dict(r.headers)["trace-id"] == b"t-1" for r in redriven)
    assert {dict(r.headers)["dlq.redriven.from"] for r in redriven} == {
        f"{topics.dead_letters}:0:2".encode(),
        f"{topics.dead_letters}:0:4".encode(),
    }

    # a third time: what the read model shows applied is skipped
    third: dict[int, dict[str, Any]] = {
        p["offset"]: p for p in (await cli(env, "dlq", "redrive", "--json")).lines()
    }
    assert third[2]["action"] == "skip" and third[3]["action"] == "skip"
    assert third[4]["action"] == "redrive"  # activity leaves no trace; the fold merges it once


async def test_dlq_refuses_a_bad_time(topics: Topics, kafka_bootstrap: str, db_url: str) -> None:
    env = cli_env(kafka_bootstrap, topics, db_url, "unused")
    done = await cli(env, "dlq", "list", "--since", "2026-11-30T09:14:00", code=2)
    assert "has no time zone" in done.err and "Traceback" not in done.err


async def test_dlq_redrive_refuses_a_database_without_a_read_model(
    topics: Topics, kafka_bootstrap: str, tmp_path: Path
) -> None:
    # an empty database would show nothing applied: every dead letter would be sent again
    empty = f"sqlite+aiosqlite:///{tmp_path / 'empty.db'}"
    env = cli_env(kafka_bootstrap, topics, empty, "unused")
    done = await cli(env, "dlq", "redrive", "--dry-run", code=1)
    assert "no read model at" in done.err and "SESSIONS_DATABASE_URL" in done.err
    assert "Traceback" not in done.err


async def test_a_redrive_with_the_broker_away_leaves_nothing_open(
    db_url: str, migrated: MigratedCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Its producer was started before the `try` that closes it and the engine: a start
    that failed left both open (a review, stop 73)."""
    await migrated.migrate(db_url)
    engines: list[AsyncEngine] = []
    disposed: list[AsyncEngine] = []
    dispose = AsyncEngine.dispose

    def made(url: str, **named: Any) -> AsyncEngine:
        engines.append(make_engine(url, **named))
        return engines[-1]

    async def recorded(engine: AsyncEngine, close: bool = True) -> None:
        disposed.append(engine)
        await dispose(engine, close)

    monkeypatch.setattr(dead_letter_tools, "make_engine", made)
    monkeypatch.setattr(AsyncEngine, "dispose", recorded)
    away = connection("127.0.0.1:9", Topics(prefix="away.", partitions=1))
    away = away.model_copy(update={"kafka_request_timeout_ms": 1_000})
    with no_kafka_client_left_unclosed(), pytest.raises(KafkaError):
        await dead_letter_tools.redrive(
            away, away.topics, db_url, dead_letter_tools.LetterFilter(), print, dry_run=True
        )
    [engine] = engines
    assert engine in disposed


async def test_one_hostile_dead_letter_does_not_stop_the_dlq_commands(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
) -> None:
    """Letters a producer wrote straight to the dead-letter topic (its own timestamps and
    headers): each stopped every `dlq` command with a traceback before 2026-12-05 (a time no
    datetime holds; a '²' that `str.isdigit` takes and `int` refuses), or reached a terminal
    raw through `jq -r` (ESC, U+202E in the reason)."""
    await migrated.migrate(db_url)  # a read model for `redrive` to check against
    value = encode(created("hostile-letter"))
    sent = []
    for millis in (-62_135_596_801_000, 253_402_300_800_000):  # before year 1, year 10000
        # a producer of its own: one the broker refused a time cannot send again (idempotent)
        own = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, enable_idempotence=False)
        await own.start()
        try:
            meta = await own.send_and_wait(
                topics.dead_letters, value, key=b"acme/h", timestamp_ms=millis
            )
        except KafkaError:  # a broker may refuse a time that far ahead (after.max.ms)
            continue
        finally:
            await own.stop()
        sent.append(meta.offset)
    assert sent, "the broker took neither time"
    forged = [
        ("dlq.reason", "x\x1b[2J\u202eevil".encode()),
        ("dlq.source.topic", topics.events.encode()),
        ("dlq.source.offset", "²".encode()),
        ("dlq.source.partition", b"9" * 5000),
    ]
    await producer.send_and_wait(topics.dead_letters, value, key=b"acme/h", headers=forged)
    env = cli_env(kafka_bootstrap, topics, db_url, "unused")

    listed = (await cli(env, "dlq", "list", "--json")).lines()
    assert len(listed) == len(sent) + 1
    reason = listed[-1]["reason"]
    assert "\x1b" not in reason and "\u202e" not in reason and "\\u202e" in reason, reason
    assert listed[-1]["source_offset"] is None and listed[-1]["source"]["partition"] is None
    shown = (await cli(env, "dlq", "show", str(sent[0]))).lines()
    assert shown[0]["offset"] == sent[0]
    planned = (await cli(env, "dlq", "redrive", "--dry-run", "--json")).lines()
    # no source topic named: refused; the forged one names one (its offset unreadable)
    assert [p["action"] for p in planned] == ["refused"] * len(sent) + ["redrive"]


async def test_redrive_goes_a_chunk_at_a_time_and_hands_each_letter_once(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Seven letters in chunks of three: each planned, checked and sent once; what the read
    model holds (here nothing) skipped; the memory of one chunk at a time."""
    await migrated.migrate(db_url)
    monkeypatch.setattr(dead_letter_tools, "REDRIVE_CHUNK", 3)
    for n in range(7):
        event = created(f"chunked-{n}")
        key = record_key("acme", event.session_id)
        await _park(producer, topics, topics.events, key, encode(event), "refused, say")
    handed: list[int] = []
    counts = await dead_letter_tools.redrive(
        connection(kafka_bootstrap, topics),
        topics,
        db_url,
        dead_letter_tools.LetterFilter(),
        lambda plan: handed.append(plan.letter.offset),
        dry_run=False,
    )
    assert counts == {"redrive": 7} and sorted(handed) == list(range(7))
    redriven = await read_topic(kafka_bootstrap, topics.events)
    assert sorted(r.key for r in redriven) == sorted(
        record_key("acme", sid(f"chunked-{n}")) for n in range(7)
    )


async def _redriven(
    kafka_bootstrap: str,
    topics: Topics,
    db_url: str,
    *,
    dry_run: bool = False,
    copies: bool = False,
) -> list[dead_letter_tools.Redrive]:
    plans: list[dead_letter_tools.Redrive] = []
    await dead_letter_tools.redrive(
        connection(kafka_bootstrap, topics),
        topics,
        db_url,
        dead_letter_tools.LetterFilter(),
        plans.append,
        dry_run=dry_run,
        copies=copies,
    )
    return plans


async def _fold_each(
    db_url: str, topics: Topics, records: list[Any], *, swept_after: int | None = None
) -> None:
    """The registry folds `records`, each in a batch of its own (so a record's row is stored
    before the next is read, as across polls); with `swept_after`, a sweep a day later after
    that many, which deletes the sessions never created (a registry stopped that long)."""
    store = open_store(db_url)
    try:
        ingestor = Ingestor(store, Projector(topics), "late", CountingDeadLetters(), lambda: NOW)
        for n, record in enumerate(records):
            await ingestor.ingest({TopicPartition(topics.events, record.partition): [record]})
            if n + 1 == swept_after:
                await Sweeper(store, topics).sweep(NOW + timedelta(days=1))
    finally:
        await store.dispose()


async def _new_records(kafka_bootstrap: str, topic: str, before: set[tuple[int, int]]) -> list[Any]:
    log = await read_topic(kafka_bootstrap, topic)
    return sorted((r for r in log if (r.partition, r.offset) not in before), key=lambda r: r.offset)


async def _state_and_revoked(db_url: str, session_id: str) -> tuple[str, bool]:
    [row] = [
        r
        for r in await table_rows(db_url, sessions, [sessions.c.session_id])
        if r["session_id"] == session_id
    ]
    held = await table_rows(db_url, revocations, [revocations.c.session_id])
    return row["state"], any(r["session_id"] == session_id for r in held)


async def _logged_and_parked(producer: AIOKafkaProducer, topics: Topics, *log: Any) -> None:
    """The session's records `log` (one creation among them) on the events topic, in this
    order, under the session's key; the creation dead-lettered as read there."""
    (event,) = [m for m in log if m.type == "session.created"]
    key = record_key("acme", event.session_id)
    for message in log:
        sent = await producer.send_and_wait(topics.events, encode(message), key=key)
        if message is event:
            at = (sent.partition, sent.offset)
    await _park(producer, topics, topics.events, key, encode(event), "refused", at)


async def test_a_creation_redriven_late_comes_back_with_its_sessions_ends(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
) -> None:
    """A creation dead-lettered, its session logged out meanwhile: the registry kept the end
    in a row never created, and deleted it an hour later. Redriven after that, the creation
    made an open session, never revoked (found by a review, 2026-12-06). The redrive now sends
    the session's ends found on the log, right before the creation and again right after
    (stop 68: only after it before): folded, the session is ended and revoked, even when the
    row the first copy made was deleted before the creation was read. Another session's end
    is not sent; a dry run says what would be and sends none."""
    await migrated.migrate(db_url)
    # dated ten minutes ahead by its producer's clock: its ends are looked for from where it
    # was read, not only from five minutes before its time (a review, 2026-12-06)
    event = created("late-1", at=NOW + timedelta(minutes=10))
    key = record_key("acme", event.session_id)
    ended = logout("late-1", NOW - timedelta(minutes=4))
    other = logout("other-1", NOW - timedelta(minutes=4))
    read = await producer.send_and_wait(topics.events, encode(event), key=key)
    for message in (ended, other):
        await producer.send_and_wait(
            topics.events, encode(message), key=record_key("acme", message.session_id)
        )
    why = "the registry failed, say"
    at = (read.partition, read.offset)
    await _park(producer, topics, topics.events, key, encode(event), why, at)
    before = {(r.partition, r.offset) for r in await read_topic(kafka_bootstrap, topics.events)}

    [planned] = await _redriven(kafka_bootstrap, topics, db_url, dry_run=True)
    assert planned.action == "redrive"
    assert planned.as_json()["ends_sent"] == [str(ended.event_id)]
    assert len(await read_topic(kafka_bootstrap, topics.events)) == len(before)
    await _redriven(kafka_bootstrap, topics, db_url)
    sent = await _new_records(kafka_bootstrap, topics.events, before)
    assert [(r.key, r.value) for r in sent] == [
        (key, encode(ended)),
        (key, encode(event)),
        (key, encode(ended)),
    ]
    resent = [(dead_letter_tools.RESENT_FOR, f"{topics.dead_letters}:0:0".encode())]
    assert list(sent[0].headers) == resent and list(sent[2].headers) == resent

    # the registry folds what was sent, the end first: the session ended, and revoked; and
    # so when the first end's row is swept before the creation is read
    await _fold_each(db_url, topics, sent, swept_after=1)
    assert await _state_and_revoked(db_url, event.session_id) == ("terminated", True)


async def test_an_end_appended_before_a_creation_dated_ahead_comes_back_with_it(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
) -> None:
    """A termination by id applied before its session's creation was read (the race the
    registry keeps such ends for) is appended before the creation; a creation dated ahead by
    its producer's clock had its ends looked for from its own offset, and this one was missed:
    redriven, the session opened for good (a review, stop 68). They are looked for from five
    minutes before the moment the broker appended the creation now."""
    await migrated.migrate(db_url)
    # dated from now, not NOW (this module's import): a full run reaches this test minutes
    # later, and ten minutes past NOW may be before the end was appended (a review, stop 68)
    now = datetime.now(UTC)
    event = created("ahead-1", at=now + timedelta(minutes=10))
    ended = logout("ahead-1", now)
    await _logged_and_parked(producer, topics, ended, event)

    [planned] = await _redriven(kafka_bootstrap, topics, db_url)
    assert planned.as_json()["ends_sent"] == [str(ended.event_id)]


async def test_ends_on_the_partition_the_creation_was_read_from_or_keyed_otherwise_come_back(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
) -> None:
    """Partitions added to the events topic since a creation was dead-lettered send it, by its
    key, to another partition than the one it and its session's logout were read from; and a
    producer may key an end otherwise. Only the partition it is sent to was read, under its
    key: neither end was found, and the creation came back open, never revoked (a review,
    stop 70). Both are found now."""
    await migrated.migrate(db_url)
    now = datetime.now(UTC)
    # dated an hour ahead by its producer's clock: on the partition it is sent to, its ends
    # were looked for from its date, and one appended now was missed (a review of the fix);
    # from when the broker appended it now, on every partition
    event = created("moved-1", at=now + timedelta(hours=1))
    key = record_key("acme", event.session_id)
    target = partition_for_key(key, list(range(topics.partitions)))
    source = (target + 1) % topics.partitions  # where it went before partitions were added
    ended_there = logout("moved-1", now + timedelta(seconds=1))
    ended_miskeyed = logout("moved-1", now + timedelta(seconds=2))
    read = await producer.send_and_wait(topics.events, encode(event), key=key, partition=source)
    await producer.send_and_wait(topics.events, encode(ended_there), key=key, partition=source)
    await producer.send_and_wait(
        topics.events, encode(ended_miskeyed), key=b"acme/not-its-key", partition=target
    )
    await _park(
        producer, topics, topics.events, key, encode(event), "refused", (source, read.offset)
    )

    [planned] = await _redriven(kafka_bootstrap, topics, db_url)
    assert planned.as_json()["to"] == {"topic": topics.events, "partition": target}
    assert sorted(planned.as_json()["ends_sent"]) == sorted(
        [str(ended_there.event_id), str(ended_miskeyed.event_id)]
    )


async def test_a_creation_dated_ahead_finds_its_ends_when_an_earlier_creation_is_gone(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
) -> None:
    """The append time was read at the earliest creation of the partition they came from;
    that one gone (retention), the later creations fell back to their producers' dates, and
    one dated ahead missed its logout on the partition it is sent to (a review of the fix,
    stop 70). The first record still held bounds them now."""
    await migrated.migrate(db_url)
    now = datetime.now(UTC)
    gone, kept = created("gone-1", at=now), created("kept-1", at=now + timedelta(hours=1))
    kept_key = record_key("acme", kept.session_id)
    target = partition_for_key(kept_key, list(range(topics.partitions)))
    source = (target + 1) % topics.partitions
    ended = logout("kept-1", now)
    read: dict[str, Any] = {}
    for message in (gone, kept):
        key = record_key("acme", message.session_id)
        read[message.session_id] = await producer.send_and_wait(
            topics.events, encode(message), key=key, partition=source
        )
    await producer.send_and_wait(topics.events, encode(ended), key=kept_key, partition=target)
    for message in (gone, kept):
        at = (source, read[message.session_id].offset)
        key = record_key("acme", message.session_id)
        await _park(producer, topics, topics.events, key, encode(message), "refused", at)
    admin = new_admin(connection(kafka_bootstrap, topics))
    await admin.start()
    try:
        tp = TopicPartition(topics.events, source)
        await admin.delete_records({tp: RecordsToDelete(read[kept.session_id].offset)})
    finally:
        await admin.close()

    plans = await _redriven(kafka_bootstrap, topics, db_url, dry_run=True)
    [planned] = [p for p in plans if p.detail.get("session_id") == kept.session_id]
    assert planned.as_json()["ends_sent"] == [str(ended.event_id)]


async def test_a_redrive_sends_a_record_once_not_its_repeats_nor_the_copies_of_earlier_runs(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
) -> None:
    """A record the registry still refuses comes back to the dead letters after each redrive,
    as a copy carrying `dlq.redriven.from`; every run sent it and its copies, and the topic
    doubled each run (a review, stop 70). A copy is skipped now unless `--include-copies`,
    and a record planned already in the chunk (the same tenant and id) is sent once."""
    await migrated.migrate(db_url)
    event = logout("repeat-1", datetime.now(UTC))
    key, value = record_key("acme", event.session_id), encode(event)
    # a hostile letter first, carrying the logout's event id for another session: not the
    # same record, so the logout is not skipped for it (a review, stop 70)
    hostile = logout("someone-else", datetime.now(UTC)).model_copy(
        update={"event_id": event.event_id}
    )
    hostile_key = record_key("acme", hostile.session_id)
    letters = [
        DeadLetter(topics.events, 1, 1, hostile_key, encode(hostile), (), "refused, say"),
        DeadLetter(topics.events, 0, 1, key, value, (), "database_refused, say"),
        DeadLetter(topics.events, 0, 1, key, value, (), "database_refused, say"),  # a repeat
        DeadLetter(
            topics.events,
            0,
            9,
            key,
            value,
            ((dead_letter_tools.REDRIVEN_FROM, f"{topics.dead_letters}:0:0".encode()),),
            "database_refused again",
        ),
    ]
    for letter in letters:
        await producer.send_and_wait(
            topics.dead_letters,
            letter.value,
            key=letter.key,
            headers=letter.dlq_headers("registry"),
        )
    planned = [
        (p.action, p.why) for p in await _redriven(kafka_bootstrap, topics, db_url, dry_run=True)
    ]
    assert [action for action, _ in planned] == ["redrive", "redrive", "skip", "skip"]
    assert planned[2][1] == "the same record as the letter at offset 1"
    assert planned[3][1].startswith(
        f"a copy dead-lettered again after the redrive of {topics.dead_letters}:0:0"
    )
    assert "--include-copies" in planned[3][1]
    copied = await _redriven(kafka_bootstrap, topics, db_url, dry_run=True, copies=True)
    assert [p.why for p in copied][3] == "the same record as the letter at offset 1"


async def test_a_redrive_stopped_between_a_creation_and_its_ends_still_ends_the_session(
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    migrated: MigratedCopies,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A run that fails after its first send (a broker error, Ctrl-C), the registry folding
    what it sent, then the run again, as the runbook says. With the creation sent first, the
    next run skipped it as applied and never sent its ends: the session stayed open for good
    (a review, stop 68). The ends go first now: what the first run leaves is an end kept as a
    session never created, and the second run sends the creation, which folds ended and is
    revoked."""
    await migrated.migrate(db_url)
    event = created("stopped-1", at=NOW)
    ended = logout("stopped-1", NOW + timedelta(seconds=1))
    await _logged_and_parked(producer, topics, event, ended)
    before = {(r.partition, r.offset) for r in await read_topic(kafka_bootstrap, topics.events)}

    made = new_producer

    def failing_second_send(kafka: Any, **options: Any) -> AIOKafkaProducer:
        sending = made(kafka, **options)
        send, calls = sending.send, []

        async def send_once(*args: Any, **kwargs: Any) -> Any:
            calls.append(args)
            if len(calls) == 2:
                raise KafkaError("the broker went away, say")
            return await send(*args, **kwargs)

        sending.send = send_once
        return sending

    monkeypatch.setattr(dead_letter_tools, "new_producer", failing_second_send)
    with pytest.raises(KafkaError):
        await _redriven(kafka_bootstrap, topics, db_url)
    monkeypatch.undo()
    first = await _new_records(kafka_bootstrap, topics.events, before)
    assert [r.value for r in first] == [encode(ended)]
    await _fold_each(db_url, topics, first)

    [again] = await _redriven(kafka_bootstrap, topics, db_url)
    assert again.action == "redrive"
    seen = {(r.partition, r.offset) for r in first} | before
    await _fold_each(db_url, topics, await _new_records(kafka_bootstrap, topics.events, seen))
    assert await _state_and_revoked(db_url, event.session_id) == ("terminated", True)
