"""Bad input goes to the dead-letter topic with its reason and origin; the partition flows on."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest
from registry_helpers import StartRegistry, created, read_topic, session_rows, sid

from session_contracts.codec import encode
from session_contracts.topics import Topics

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
