"""The SRE tools' pure parts: the partition a key maps to, reading and filtering dead letters,
planning a redrive (upcast, re-keyed), position targets, and the CLI's time options."""

from __future__ import annotations

import json
import uuid
from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
import typer

from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import (
    SCHEMA_VERSION,
    ExpiryReason,
    SessionExpired,
    SessionFilter,
    SessionPolicy,
    SessionTerminated,
    SessionType,
    TerminateSessions,
    TerminationReason,
)
from session_contracts.publisher import created_event
from session_contracts.record_signing import SIGNATURE_HEADER, RecordSigner
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import REASON, SOURCE_OFFSET, SOURCE_TOPIC, DeadLetter
from session_registry.adapters.partitions import partition_for_key, to_millis
from session_registry.entrypoints.cli_options import moment
from session_registry.service_layer.dead_letter_tools import (
    MAX_ENDS_RESENT,
    LetterFilter,
    _looked_for_from,
    _looked_from,
    _number,
    _take_end,
    plan,
    read_letter,
)
from session_registry.service_layer.position_tools import Target
from session_registry.service_layer.session_log import record_time

TOPICS = Topics(prefix="u.", partitions=6)
AT = datetime(2026, 11, 30, 9, 14, tzinfo=UTC)

# org.apache.kafka.common.utils.UtilsTest.testMurmur2: the Java client's murmur2 of these keys
JAVA_MURMUR2 = {
    b"21": -973932308,
    b"foobar": -790332482,
    b"a-little-bit-long-string": -985981536,
    b"a-little-bit-longer-string": -1486304829,
    b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8": -58897971,
    b"abc": 479470107,
}


@pytest.mark.parametrize("key", list(JAVA_MURMUR2))
@pytest.mark.parametrize("count", [1, 3, 6, 7, 100])
def test_a_key_maps_to_the_partition_the_java_client_chooses(key: bytes, count: int) -> None:
    # Utils.toPositive(murmur2(key)) % numPartitions (BuiltInPartitioner.partitionForKey)
    assert partition_for_key(key, range(count)) == (JAVA_MURMUR2[key] & 0x7FFFFFFF) % count


def test_partition_for_key_needs_partitions_and_a_zone_for_times() -> None:
    with pytest.raises(ValueError):
        partition_for_key(b"k", [])
    with pytest.raises(ValueError, match="no time zone"):
        to_millis(datetime(2026, 1, 1))


def _created(credential: str = "cred-1") -> Any:
    return created_event(
        event_id=uuid.uuid4(),
        occurred_at=AT,
        tenant_id="acme",
        credential=credential,
        user_id="u1",
        user_name="User 1",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        policy=SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=600),
    )


def _record(
    value: bytes | None,
    key: bytes | None,
    reason: str,
    offset: int = 0,
    headers: tuple[tuple[str, bytes | None], ...] = (("trace", b"t"),),
) -> Any:
    """A record of the DLQ topic: a refused record (with its own `headers`), as parked."""
    letter = DeadLetter(TOPICS.events, 2, 40, key, value, headers, reason)
    return SimpleNamespace(
        partition=0,
        offset=offset,
        timestamp=to_millis(AT),
        key=key,
        value=value,
        headers=letter.dlq_headers("registry-a"),
    )


def test_a_dead_letter_is_read_from_its_headers_and_leniently_from_its_body() -> None:
    event = _created()
    letter = read_letter(_record(encode(event), b"acme/h", "the database refused it"))
    assert (letter.reason, letter.source, letter.source_partition, letter.source_offset) == (
        "the database refused it",
        TOPICS.events,
        2,
        40,
    )
    assert (letter.type, letter.tenant_id, letter.schema_version) == (
        "session.created",
        "acme",
        SCHEMA_VERSION,
    )
    assert letter.consumer == "registry-a" and letter.timestamp == AT
    handle = session_handle("beta", "a-credential")
    broken = read_letter(_record(b"\xff{", f"beta/{handle}".encode(), "malformed JSON"))
    assert (broken.type, broken.tenant_id, broken.schema_version) == (None, "beta", None)
    command = read_letter(_record(b"\xff{", record_key("beta", str(uuid.uuid4())), "x"))
    assert command.tenant_id == "beta"
    # a v1 key is the credential: its part before a `/` is never shown as the tenant
    v1 = b"Qk9CU0VDUkVUQ1JFREVOVElBTA/AAAAxyz+9=="
    assert read_letter(_record(b"\xff{", v1, "malformed JSON")).tenant_id is None
    assert read_letter(_record(b"\xff{", b"beta/x", "malformed JSON")).tenant_id is None
    odd = read_letter(_record(b'{"type": 5, "schema_version": true}', None, "x"))
    assert (odd.type, odd.tenant_id, odd.schema_version) == (None, None, None)


def test_the_filter_holds_every_condition() -> None:
    letter = read_letter(_record(encode(_created()), b"acme/h", "Unknown Event Type"))
    assert LetterFilter(reason="unknown event").matches(letter)
    assert not LetterFilter(reason="malformed").matches(letter)
    assert LetterFilter(type="session.created", tenant_id="acme").matches(letter)
    assert not LetterFilter(type="session.created", tenant_id="beta").matches(letter)
    assert LetterFilter(since=AT, until=AT).matches(letter)
    assert not LetterFilter(since=AT + timedelta(milliseconds=1)).matches(letter)
    assert not LetterFilter(until=AT - timedelta(milliseconds=1)).matches(letter)


def test_a_v1_dead_letter_is_planned_upcast_and_keyed_by_its_handle() -> None:
    payload = json.loads(encode(_created()))
    payload.update(schema_version=1, session_id="the-credential")
    letter = read_letter(_record(json.dumps(payload).encode(), b"the-credential", "refused"))
    planned = plan(letter, TOPICS)
    handle = session_handle("acme", "the-credential")
    assert planned.action == "redrive" and "upcast from v1" in planned.why
    assert planned.key == record_key("acme", handle) and planned.topic == TOPICS.events
    assert planned.value is not None and b"the-credential" not in planned.value
    assert json.loads(planned.value)["schema_version"] == SCHEMA_VERSION
    assert planned.detail["upcast_from"] == 1 and planned.detail["session_id"] == handle


def test_a_dead_letter_the_codec_still_refuses_is_not_planned() -> None:
    payload = json.loads(encode(_created()))
    payload["schema_version"] = SCHEMA_VERSION + 1
    newer = plan(read_letter(_record(json.dumps(payload).encode(), b"k", "newer")), TOPICS)
    assert newer.action == "refused" and "newer than this consumer reads" in newer.why
    elsewhere = read_letter(_record(encode(_created()), b"k", "x"))
    moved = plan(replace(elsewhere, source="someone.elses.topic"), TOPICS)
    assert moved.action == "refused" and "not one the registry reads" in moved.why


def test_a_position_target_is_exactly_one() -> None:
    assert Target(latest=True).latest
    assert Target(offset=0).offset == 0
    for bad in ({}, {"latest": True, "earliest": True}, {"offset": 3, "moment": AT}):
        with pytest.raises(ValueError, match="exactly one of"):
            Target(**bad)


def test_times_on_the_command_line_need_a_zone() -> None:
    assert moment("2026-11-30T09:14:00Z", "--since") == AT
    assert moment("2026-11-30T10:14:00+01:00", "--since") == AT
    assert moment(None, "--since") is None
    for bad in ("2026-11-30T09:14:00", "yesterday"):
        with pytest.raises(typer.BadParameter):
            moment(bad, "--since")


def test_headers_a_producer_forges_never_send_its_record_to_another_topic() -> None:
    # a producer allowed on the events topic writes a termination command there, with headers
    # claiming the dead letter came from the commands topic: redriven as such, the command
    # would be published with the operator's rights. The registry's own headers come last,
    # and the tools read those.
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=AT,
        tenant_id="acme",
        requested_by="nobody",
        confirmed_at=AT,
        filter=SessionFilter(),
    )
    forged = (
        (SOURCE_TOPIC, TOPICS.commands.encode()),
        (REASON, b"database_refused"),
        (SOURCE_OFFSET, b"7"),
    )
    record = _record(encode(command), b"acme/x", "unknown event type", headers=forged)
    read = read_letter(record)
    assert (read.source, read.source_offset, read.reason) == (
        TOPICS.events,
        40,
        "unknown event type",
    )
    planned = plan(read, TOPICS)
    assert planned.action == "refused" and planned.topic is None


def test_cut_headers_a_producer_forges_are_not_what_dlq_show_reports() -> None:
    """`dlq.value.size` and its kin are the registry's only when they follow its last
    `dlq.reason`: a producer's own, copied before them, say nothing was cut."""
    forged: tuple[tuple[str, bytes | None], ...] = (
        ("dlq.value.size", b"5000000"),
        ("dlq.headers.dropped", None),
        ("dlq.reason", b"forged"),
    )
    shown = read_letter(_record(b"{}", b"acme/h", "malformed", headers=forged)).detail(
        TOPICS, raw=False
    )
    assert "cut" not in shown
    assert shown["reason"] == "malformed"
    assert (
        shown["headers"] == {}
    )  # the forged dlq.* are the registry's names: not listed as the record's


def test_a_value_null_header_a_producer_forges_does_not_hide_its_value() -> None:
    """`dlq.value.null` says the refused record had neither key nor value only when it
    follows the registry's last `dlq.reason`: a producer's own leaves the value as sent."""
    forged: tuple[tuple[str, bytes | None], ...] = (
        ("dlq.value.null", b"1"),
        ("dlq.reason", b"forged"),
    )
    read = read_letter(_record(b"", b"acme/h", "empty record", headers=forged))
    assert read.value == b""
    assert read.detail(TOPICS, raw=True)["value"] == ""
    genuine = DeadLetter(TOPICS.events, 2, 40, None, None, (), "empty record")
    parked = SimpleNamespace(
        partition=0,
        offset=0,
        timestamp=to_millis(AT),
        key=genuine.sent_key(),
        value=genuine.sent_value(),
        headers=genuine.dlq_headers("registry-a"),
    )
    assert (parked.key, parked.value) == (None, b"")
    assert read_letter(parked).value is None


def test_a_record_time_no_datetime_holds_is_the_nearest_one_held() -> None:
    """A producer stamps its `CreateTime` records as it likes: one before year 1 stopped every
    `dlq` command and `events --revocations` with a traceback."""
    assert record_time(-62_135_596_801_000) == datetime.min.replace(tzinfo=UTC)
    assert record_time(253_402_300_800_000) == datetime.max.replace(tzinfo=UTC)
    assert record_time(2**63 - 1) == datetime.max.replace(tzinfo=UTC)
    assert record_time(0) == datetime(1970, 1, 1, tzinfo=UTC)


def test_a_dead_letters_numbers_are_ascii_digits_of_sane_length() -> None:
    """`str.isdigit` takes '²', which `int` refuses, and `int` refuses over 4,300 digits: a
    header forged so stopped every `dlq` command."""
    assert _number("²") is None and _number("9" * 5000) is None and _number("-1") is None
    assert _number("٣") is None  # decimal, not ASCII
    assert _number("42") == 42 and _number(None) is None


def test_dlq_show_prints_the_records_own_headers_escaped_and_bounded() -> None:
    """JSON escapes them for a terminal, but `jq -r` printed ESC and U+202E raw."""
    headers = (("x\u202ename", b"\x1b[2Jwiped"), ("long", b"z" * 100_000), ("none", None))
    letter = read_letter(_record(encode(_created()), b"acme/h", "refused", headers=headers))
    shown = letter.detail(TOPICS, raw=False)["headers"]
    assert shown["x\\u202ename"] == "\\u001b[2Jwiped"
    assert len(shown["long"]) <= 4096 and shown["none"] is None


def test_dlq_show_prints_each_value_of_a_header_sent_twice() -> None:
    """Two signature headers are the registry's reason to refuse a record; `dlq show` showed
    one (a dict by name: a review, stop 68). Names escaped alike keep both values too."""
    headers = (
        (SIGNATURE_HEADER, b"one"),
        ("trace", b"t"),
        (SIGNATURE_HEADER, b"two"),
        ("a\u202eb", b"escaped"),
        ("a\\u202eb", None),
    )
    letter = read_letter(_record(encode(_created()), b"acme/h", "refused", headers=headers))
    shown = letter.detail(TOPICS, raw=False)["headers"]
    assert shown == {
        SIGNATURE_HEADER: ["one", "two"],
        "trace": "t",
        "a\\u202eb": ["escaped", None],
    }


def test_a_creations_ends_are_looked_for_from_no_earlier_than_the_epoch() -> None:
    """A creation dated in year 1, or in the first minutes of 1970, is a valid record: the
    moment its ends are looked for from stays one Kafka holds (it overflowed, or went
    negative, and stopped every later letter's redrive: a review, 2026-12-06)."""
    epoch = datetime(1970, 1, 1, tzinfo=UTC)
    assert _looked_from(datetime(1, 1, 1, tzinfo=UTC)) == epoch
    assert _looked_from(epoch + timedelta(minutes=1)) == epoch
    assert _looked_from(AT) == AT - timedelta(minutes=5)


def test_a_creations_ends_are_kept_bounded_with_only_an_expirys_signature() -> None:
    """What `redrive` sends again with a creation: at most `MAX_ENDS_RESENT` ends of each type,
    each (type, event id) once, with none of a producer's headers but an expiry's one
    signature of the registry's form. A header without a value stopped every redrive
    (`bytes(None)`), and one of megabytes made the end too large to send again (a review,
    stop 68; a second review found the signature header kept whatever its size); ends without
    number grew the redrive's memory; an expiry with the id of a termination hid it."""
    creation = plan(read_letter(_record(encode(_created()), b"acme/h", "refused")), TOPICS)
    handle = creation.detail["session_id"]

    def end(kind: str, headers: tuple[tuple[str, bytes | None], ...], event_id: Any = None) -> Any:
        envelope = {
            "event_id": event_id or uuid.uuid4(),
            "occurred_at": AT,
            "tenant_id": "acme",
            "session_id": handle,
        }
        made = (
            SessionExpired(**envelope, reason=ExpiryReason.idle)
            if kind == "session.expired"
            else SessionTerminated(**envelope, reason=TerminationReason.logout)
        )
        return SimpleNamespace(key=creation.key, value=encode(made), headers=headers)

    signature = RecordSigner(["a-registry-key-of-32-characters!!"]).sign(b"k", b"v")
    junk = (("x-none", None), ("big", b"x" * 2_000_000))
    logout = uuid.uuid4()
    _take_end(end("session.terminated", junk, logout), [creation])
    _take_end(end("session.terminated", (), logout), [creation])  # the same id again
    _take_end(end("session.expired", ((SIGNATURE_HEADER, signature), *junk), logout), [creation])
    twice = ((SIGNATURE_HEADER, signature), (SIGNATURE_HEADER, signature))
    _take_end(end("session.expired", twice), [creation])  # the registry refuses: left out
    _take_end(end("session.expired", ((SIGNATURE_HEADER, b"x" * 3_000_000),)), [creation])
    _take_end(end("session.expired", ((SIGNATURE_HEADER, None),)), [creation])
    for _ in range(MAX_ENDS_RESENT + 5):
        _take_end(end("session.terminated", junk), [creation])
        _take_end(end("session.expired", junk), [creation])

    assert Counter(kind for *_, kind, _ in creation.ends) == {
        "session.terminated": MAX_ENDS_RESENT,
        "session.expired": MAX_ENDS_RESENT,
    }
    assert len(creation.ends) == 2 * MAX_ENDS_RESENT
    (first_key, _, first_headers, _, first_id), (_, _, signed, _, second_id), *rest = creation.ends
    assert (first_key, first_headers, first_id) == (creation.key, (), str(logout))
    assert (signed, second_id) == (((SIGNATURE_HEADER, signature),), str(logout))
    assert all(headers == () for _, _, headers, *_ in rest)


def test_a_creations_ends_are_looked_for_from_a_time_it_was_appended_by_or_before() -> None:
    """Read from partition 2: the first record it still holds (offset 4000) was appended on
    Dec 5. A creation at or after it was appended no earlier: from Dec 5 (its producer's date
    an hour ahead ignored: a review, stop 70). One deleted before it was appended before:
    from its own date when earlier (dated by the first record held, it was looked for from
    days after its logout: a review of that fix)."""
    held = {2: (4000, AT + timedelta(days=5))}
    ahead = _created().model_copy(update={"occurred_at": AT + timedelta(days=5, hours=1)})
    kept = plan(read_letter(_record(encode(ahead), b"acme/h", "refused", offset=1)), TOPICS)
    kept = replace(kept, letter=replace(kept.letter, source_offset=5000))
    assert _looked_for_from(kept, held) == AT + timedelta(days=5)
    deleted = plan(read_letter(_record(encode(_created()), b"acme/h", "refused")), TOPICS)
    deleted = replace(deleted, letter=replace(deleted.letter, source_offset=10))
    assert _looked_for_from(deleted, held) == _created().occurred_at
    assert _looked_for_from(deleted, {}) == _created().occurred_at  # nothing held: its date
