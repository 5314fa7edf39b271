"""Bad input goes to the dead-letter topic with its reason and origin; the partition flows on."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable

import pytest
from registry_helpers import NOW, StartRegistry, created, read_topic, session_rows, sid

from fresh_topics import connection
from java_producer import java_send
from raw_producer import raw_send, send_offset_forged
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_producer
from session_contracts.models import TerminateSessions
from session_contracts.record_batches import INFLATED_MAX_BYTES
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import CUT_AT, header_size
from session_registry.adapters.positions import load_positions
from session_registry.service_layer.dead_letter_tools import read_letter

pytestmark = pytest.mark.kafka


def _body(**changes: object) -> bytes:
    payload = json.loads(encode(created("bad-1")))
    payload.update(changes)
    return json.dumps(payload).encode()


BAD = {
    "malformed": (b'{"type": "session.created", ', "malformed JSON"),
    "unknown type": (_body(type="session.renamed"), "unknown event type 'session.renamed'"),
    "future version": (_body(schema_version=4), "schema_version 4 is newer"),
    "contract broken": (_body(ip_address="not-an-ip"), "ip_address"),
    "numeric time": (_body(occurred_at=1700000000), "session.created.occurred_at: Value error"),
    "oversized": (_body(user_agent="x" * 70_000), "exceeds the 65536 byte limit"),
    # json.loads raised a plain ValueError and the set lookup a TypeError: both stopped the
    # consumer instead of dead-lettering the record
    "integer too long": (_body(event_id="N").replace(b'"N"', b"1" * 5000), "malformed JSON"),
    "type not a string": (_body(type=["session.created"]), "unknown event type ['session"),
}


async def test_each_bad_record_is_dead_lettered_and_the_partition_flows_on(
    start_registry: StartRegistry,
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    registry = await start_registry()
    key = b"same-key"  # one partition: good records after the bad ones must still be applied
    headers = [("trace-id", b"t-123")]
    for value, _ in BAD.values():
        await send((key, value), topic=topics.events, headers=headers)
    good = created("good-1")
    await send((key, encode(good)), topic=topics.events)
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert set(rows) == {sid("good-1")}
    letters = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert len(letters) == len(BAD)
    events = await read_topic(kafka_bootstrap, topics.events)
    offsets = {(r.value, r.key): (r.partition, r.offset) for r in events}
    for letter, (name, (value, reason)) in zip(letters, BAD.items(), strict=True):
        found = dict(letter.headers)
        assert letter.key == key, name
        assert letter.value == value, name
        assert found["trace-id"] == b"t-123", name
        assert reason in found["dlq.reason"].decode(), (name, found["dlq.reason"])
        assert found["dlq.source.topic"].decode() == topics.events
        partition, offset = offsets[(value, key)]
        assert int(found["dlq.source.partition"]) == partition
        assert int(found["dlq.source.offset"]) == offset
        assert found["dlq.consumer"].decode() == registry.settings.consumer_group


async def test_a_bad_command_is_dead_lettered_too(
    start_registry: StartRegistry,
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    registry = await start_registry()
    await send(
        (b"cmd-1", b'{"type": "sessions.terminate", "schema_version": 1}'), topic=topics.commands
    )
    await registry.wait_until_idle(30)
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    found = dict(letter.headers)
    assert found["dlq.source.topic"].decode() == topics.commands
    assert "sessions.terminate breaks the contract" in found["dlq.reason"].decode()


UNSAFE_CHARACTERS = "\x00\n\r\x1b\x7f\x85\u2028\u2029\u200f\u202e\u2066"


async def test_a_dead_letters_reason_holds_only_escaped_text(
    start_registry: StartRegistry,
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    registry = await start_registry()
    hostile = "x\nERROR forged\u2028line\u202eevil\x1b[2J\x85\u2066\u200f"
    values = [
        _body(event_id="\u202e\n0000"),  # pydantic quotes the UUID's bad character raw
        _body(event_id="\nERROR forged line"),
        _body(**{hostile: 1}),  # a field name is quoted raw as the error's location
        _body(**{"\u202e" * 10_000: 1}),  # and may be 60 KB long
    ]
    for value in values:
        await send((b"same-key", value), topic=topics.events)
    await send((b"same-key", encode(created("after-hostile"))), topic=topics.events)
    await registry.wait_until_idle(30)

    assert set(await session_rows(registry)) == {sid("after-hostile")}
    letters = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert [letter.value for letter in letters] == values  # the record itself is kept as sent
    reasons = [dict(letter.headers)["dlq.reason"].decode() for letter in letters]
    for reason in reasons:
        assert not any(c in reason for c in UNSAFE_CHARACTERS), reason
        assert len(reason) <= 1024
    assert "found `\\u202e` at 0" in reasons[0]
    assert "found `\\n` at 0" in reasons[1]
    assert "x\\nERROR forged\\u2028line\\u202eevil\\u001b[2J\\u0085\\u2066\\u200f" in reasons[2]
    assert "characters cut]... " in reasons[3]


NO_VALUE: list[tuple[str, bytes | None]] = [("traceparent", None), ("tracestate", None)]
"""Headers without a value (Kafka allows them; aiokafka reads them as None)."""


async def test_records_with_headers_without_values_are_folded_or_dead_lettered_and_flow_on(
    start_registry: StartRegistry,
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    """`bytes(None)` raised copying a refused record's headers into its dead letter, and
    reading a command's trace context: the consumer task died, and the registry, restarted,
    read the same record and died again, for every tenant."""
    registry = await start_registry()
    key = b"same-key"
    await send((key, b"{not json"), topic=topics.events, headers=[*NO_VALUE, ("x", b"1")])
    await send(created("kept"), headers=NO_VALUE)
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid("kept")],
    )
    await send(command, headers=NO_VALUE)
    await send((key, encode(created("after"))), topic=topics.events)
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert set(rows) == {sid("kept"), sid("after")}
    assert rows[sid("kept")]["state"] == "terminated"
    assert [r.key for r in await read_topic(kafka_bootstrap, topics.revocations)] == [
        record_key("acme", sid("kept"))
    ]
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert letter.headers[:3] == (*NO_VALUE, ("x", b"1"))  # kept as they were, none made empty
    shown = read_letter(letter).detail(topics, raw=False)
    assert shown["headers"] == {"traceparent": None, "tracestate": None, "x": "1"}
    assert "malformed JSON" in shown["reason"]


async def test_a_record_too_large_to_copy_whole_is_dead_lettered_cut_and_the_partition_flows_on(
    start_registry: StartRegistry, topics: Topics, kafka_bootstrap: str
) -> None:
    """The broker checks a batch's size compressed: 5 MB of zeros take 5 KB in gzip. Its dead
    letter, sent whole and uncompressed, was refused by the producer (over its 1 MiB
    requests), a Kafka error the registry waits out and retries: the partition stalled for
    good. It is now cut to what fits, and says so."""
    registry = await start_registry()
    value = b"0" * 5_000_000
    key = b"k" * 300_000
    headers: list[tuple[str, bytes | None]] = [(f"h{n}", b"v" * 4_000) for n in range(80)]
    producer = new_producer(
        connection(kafka_bootstrap), compression_type="gzip", max_request_size=20_000_000
    )
    await producer.start()
    try:
        await producer.send_and_wait(topics.events, value, key=key, headers=headers, partition=0)
        good = created("after-the-giant")
        await producer.send_and_wait(
            topics.events, encode(good), key=record_key("acme", good.session_id), partition=0
        )
    finally:
        await producer.stop()
    await registry.wait_until_idle(30)

    assert set(await session_rows(registry)) == {sid("after-the-giant")}
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert letter.value == value[:CUT_AT]
    assert letter.key == key[:CUT_AT]
    kept = [h for h in letter.headers if not h[0].startswith("dlq.")]
    assert kept == headers[: len(kept)]
    assert sum(map(header_size, kept)) <= CUT_AT < sum(map(header_size, headers[: len(kept) + 1]))
    found = dict(letter.headers)
    assert found["dlq.value.size"] == b"5000000"
    assert found["dlq.key.size"] == b"300000"
    assert found["dlq.headers.dropped"] == str(len(headers) - len(kept)).encode()
    assert "exceeds the 65536 byte limit" in (found["dlq.reason"] or b"").decode()
    assert int(found["dlq.source.offset"] or b"-1") == 0
    shown = read_letter(letter).detail(topics, raw=False)
    assert shown["cut"] == {
        "value_size": 5_000_000,
        "key_size": 300_000,
        "headers_dropped": len(headers) - len(kept),
    }


async def test_records_with_header_names_not_utf8_are_folded_or_dead_lettered_and_flow_on(
    start_registry: StartRegistry, topics: Topics, kafka_bootstrap: str
) -> None:
    """The broker takes any bytes as a header's name; aiokafka's parser decoded it strictly and
    raised out of `getmany`: the consumer task died, and the registry, restarted, fetched the
    same batch and died again, for every tenant. Now read as Java reads it (U+FFFD)."""
    registry = await start_registry()
    named, after = created("named"), created("after")
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid("named")],
    )
    bad_names: list[tuple[bytes, bytes | None]] = [(b"\xff\xfe", b"x"), (b"ok", b"1")]
    await raw_send(
        kafka_bootstrap,
        topics.events,
        [
            (record_key("acme", named.session_id), encode(named), bad_names),
            (b"same-key", b"{not json", [(b"\xc3(", b"1"), (b"\x80", None)]),
            (record_key("acme", after.session_id), encode(after), []),
        ],
    )
    await raw_send(
        kafka_bootstrap,
        topics.commands,
        [(record_key("acme", str(command.command_id)), encode(command), bad_names)],
    )
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert set(rows) == {sid("named"), sid("after")}
    assert rows[sid("named")]["state"] == "terminated"
    assert [r.key for r in await read_topic(kafka_bootstrap, topics.revocations)] == [
        record_key("acme", sid("named"))
    ]
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert letter.headers[:2] == (("\ufffd(", b"1"), ("\ufffd", None))
    assert "malformed JSON" in read_letter(letter).detail(topics, raw=False)["reason"]


async def test_a_batch_inflating_past_the_bound_is_dead_lettered_as_unreadable_and_flows_on(
    start_registry: StartRegistry, topics: Topics, kafka_bootstrap: str
) -> None:
    """The broker limits a batch by its compressed size: 40 MB of zeros take 2 KB in zstd.
    aiokafka inflated it whole in the registry (and would have a gigabyte-sized one: a
    megabyte of zstd is about 30 GB). It is now inflated up to 32 MiB, then refused."""
    registry = await start_registry()
    bomb = b"\x00" * (INFLATED_MAX_BYTES + 8_000_000)
    producer = new_producer(
        connection(kafka_bootstrap), compression_type="zstd", max_request_size=64_000_000
    )
    await producer.start()
    try:
        before, after = created("before-the-bomb"), created("after-the-bomb")
        for event in (before, None, after):  # one batch each
            value, key = (bomb, b"k") if event is None else (encode(event), None)
            key = key or record_key("acme", event.session_id if event else "")
            await producer.send_and_wait(topics.events, value, key=key, partition=0)
    finally:
        await producer.stop()
    await registry.wait_until_idle(30)

    assert set(await session_rows(registry)) == {sid("before-the-bomb"), sid("after-the-bomb")}
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert read_letter(letter).value is None
    found = dict(letter.headers)
    reason = (found["dlq.reason"] or b"").decode()
    assert reason == (
        f"unreadable batch (offsets 1 to 1): its records decompress to more than "
        f"{INFLATED_MAX_BYTES} bytes"
    )
    assert int(found["dlq.source.offset"] or b"-1") == 1


async def test_a_record_its_producer_placed_past_its_batch_is_dead_lettered_and_flows_on(
    start_registry: StartRegistry, topics: Topics, kafka_bootstrap: str
) -> None:
    """A producer writes each record's offset delta, and the broker keeps it in an uncompressed
    batch. One record of delta 2^31 - 1 was handed over at offset 2^31: the registry stored that
    position and skipped every later record of the partition as applied already, for good,
    its lag 0 (a review as an attacker, stop 69). One such record a partition blinded the
    registry for every tenant."""
    registry = await start_registry()
    before, forged, after = created("before"), created("forged"), created("after")
    producer = new_producer(connection(kafka_bootstrap))
    await producer.start()
    try:
        key = record_key("acme", before.session_id)
        await producer.send_and_wait(topics.events, encode(before), key=key, partition=0)
        where = await send_offset_forged(
            kafka_bootstrap,
            topics.events,
            [(2**31 - 1, record_key("acme", forged.session_id), encode(forged))],
        )
        key = record_key("acme", after.session_id)
        await producer.send_and_wait(topics.events, encode(after), key=key, partition=0)
    finally:
        await producer.stop()
    assert where == 1
    await registry.wait_until_idle(30)

    assert set(await session_rows(registry)) == {sid("before"), sid("after")}
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    found = dict(letter.headers)
    assert int(found["dlq.source.offset"] or b"-1") == 1
    reason = (found["dlq.reason"] or b"").decode()
    assert reason.startswith(
        "unreadable batch (offsets 1 to 1): a record at offset 2147483648, out of place"
    )
    async with registry.engine.connect() as conn:
        stored = await load_positions(conn, registry.settings.consumer_group, {topics.events})
    assert stored[(topics.events, 0)] == 3  # the partition's end, not past it


async def test_a_record_with_neither_key_nor_value_is_dead_lettered_and_flows_on(
    start_registry: StartRegistry, topics: Topics, kafka_bootstrap: str
) -> None:
    """A Java producer may write one; its dead letter, sent with neither too, made aiokafka's
    producer assert: the consumer task died, and the registry, restarted, died on it again."""
    registry = await start_registry()
    after = created("after-the-null")
    key = record_key("acme", after.session_id)
    await java_send(
        kafka_bootstrap, topics.events, [(b"NULL", b"NULL"), (key, encode(after))], null=b"NULL"
    )
    await registry.wait_until_idle(30)

    assert set(await session_rows(registry)) == {sid("after-the-null")}
    (letter,) = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert (letter.key, letter.value) == (None, b"")
    read = read_letter(letter)
    assert read.value is None
    shown = read.detail(topics, raw=True)
    assert (shown["key"], shown["value"], shown["headers"]) == (None, None, {})
