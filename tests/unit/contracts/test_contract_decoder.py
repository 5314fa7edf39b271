"""One decoder for every topic, and it is total: a model or a DecodeError, whatever the bytes.

Each record kind (events, commands, revocations, settings) goes through `codec.decode`; the
registry's ingest, the gateway's revocation watcher and the demo service's settings follower
all read through it. Arbitrary bytes, arbitrary JSON and mutated valid records never raise
anything else; the cases that once escaped (an integer json.loads will not convert, nesting
deeper than the recursion limit, an unhashable `type`) are named below.
"""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from demo_service.policy import SettingsTopicPolicySource, StaticPolicySource
from demo_service.settings import DemoSettings
from fresh_topics import connection
from session_contracts import codec
from session_contracts.codec import (
    COMMANDS,
    EVENTS,
    MAX_RECORD_BYTES,
    REVOCATIONS,
    SETTINGS,
    DecodeError,
    RecordKind,
    decode,
    decode_each,
)
from session_contracts.handles import record_key, session_handle
from session_contracts.models import DEFAULT_POLICIES, SessionType
from session_contracts.topics import Topics
from session_registry.adapters.dead_letters import DeadLetter
from session_registry.service_layer.ingest import Ingestor

NOW = datetime(2030, 1, 1, tzinfo=UTC)
S1 = session_handle("acme", "s-1")

VALID: dict[str, dict[str, Any]] = {
    "event": {
        "type": "session.created",
        "schema_version": 3,
        "event_id": str(uuid.UUID(int=1)),
        "occurred_at": "2030-01-01T00:00:00Z",
        "tenant_id": "acme",
        "session_id": S1,
        "user_id": "u-1",
        "user_name": "Ada",
        "session_type": "browser",
        "ip_address": "10.0.0.1",
        "policy": {"max_session_seconds": 3600, "idle_timeout_seconds": 600},
    },
    "command": {
        "type": "sessions.terminate",
        "schema_version": 3,
        "command_id": str(uuid.UUID(int=2)),
        "requested_at": "2030-01-01T00:00:00Z",
        "tenant_id": "acme",
        "requested_by": "admin-1",
        "session_ids": [S1],
    },
    "revocation": {
        "type": "session.revoked",
        "schema_version": 3,
        "tenant_id": "acme",
        "session_id": S1,
        "session_type": "mobile",
        "revoked_at": "2030-01-01T00:00:00Z",
        "reason": "admin",
        "valid_until": "2030-02-01T00:00:00Z",
    },
    "settings": {
        "type": "session_settings.changed",
        "schema_version": 3,
        "event_id": str(uuid.UUID(int=3)),
        "occurred_at": "2030-01-01T00:00:00Z",
        "tenant_id": "acme",
        "changed_by": "admin-1",
        "settings": {"browser": {"max_session_seconds": 60, "idle_timeout_seconds": 30}},
    },
}
KINDS: dict[str, RecordKind[Any]] = {
    "event": EVENTS,
    "command": COMMANDS,
    "revocation": REVOCATIONS,
    "settings": SETTINGS,
}
every_kind = pytest.mark.parametrize("noun", list(KINDS))


def _body(noun: str, **changes: Any) -> bytes:
    return json.dumps({**VALID[noun], **changes}).encode()


def _verdict(kind: RecordKind[Any], raw: bytes | None) -> BaseModel | str:
    """The model, or the DecodeError's reason; any other exception fails the caller.

    `decode_each` (the registry's batch decoder) must give the same verdict, amid valid
    records of the kind."""
    valid = _body(next(noun for noun, other in KINDS.items() if other is kind))
    each = decode_each(kind, [valid, raw, valid])
    assert not isinstance(each[0], DecodeError) and each[0] == each[2]
    try:
        message = decode(kind, raw)
    except DecodeError as exc:
        assert isinstance(exc.reason, str) and exc.reason
        assert isinstance(each[1], DecodeError) and each[1].reason == exc.reason
        return exc.reason
    assert isinstance(message, BaseModel)
    assert getattr(message, "type", None) in kind.types
    assert each[1] == message
    return message


@every_kind
def test_a_valid_record_of_each_kind_round_trips(noun: str) -> None:
    kind = KINDS[noun]
    message = decode(kind, _body(noun))
    assert decode(kind, codec.encode(message)) == message


@every_kind
def test_each_kind_refuses_the_types_of_the_others(noun: str) -> None:
    for other in VALID:
        if other != noun:
            reason = _verdict(KINDS[noun], _body(other))
            assert reason == f"unknown {noun} type {VALID[other]['type']!r}"


BIG = "1" * 5000  # json.loads raises a plain ValueError: more digits than int() converts
NAMED: dict[str, tuple[Any, str]] = {
    "5,000-digit integer alone": (BIG.encode(), "malformed JSON: Exceeds the limit"),
    "5,000-digit schema_version": (b'{"schema_version": ' + BIG.encode() + b"}", "malformed JSON"),
    "5,000-digit field": (
        lambda noun: _body(noun, extra=0).replace(b"0}", BIG.encode() + b"}"),
        "malformed JSON",
    ),
    "4,000-digit schema_version": ('{"schema_version": ' + "9" * 4000 + "}", "is newer than"),
    "deeply nested array": (b"[" * 20_000 + b"]" * 20_000, "malformed JSON"),
    "deeply nested object": (b'{"a":' * 10_000 + b"1" + b"}" * 10_000, "malformed JSON"),
    "deep value in a record": (
        lambda noun: _body(noun, extra=0).replace(b"0}", b"[" * 15_000 + b"]" * 15_000 + b"}"),
        "malformed JSON",
    ),
    "invalid UTF-8": (b"\xff\xfe{}", "malformed JSON: not UTF-8"),
    "invalid UTF-8 in a string": (
        lambda noun: _body(noun).replace(b"acme", b"ac\xc3\x28e"),
        "not UTF-8",
    ),
    "lone surrogate": (lambda noun: _body(noun).replace(b'"acme"', b'"ac\\ud800me"'), "tenant_id"),
    "top-level list": (b"[1, 2]", "expected a JSON object, got list"),
    "top-level string": (b'"session.created"', "expected a JSON object, got str"),
    "top-level number": (b"1", "expected a JSON object, got int"),
    "top-level null": (b"null", "expected a JSON object, got NoneType"),
    "empty bytes": (b"", "malformed JSON"),
    "no value": (None, "empty record (no value)"),
    "oversized": (b" " * (MAX_RECORD_BYTES + 1), "exceeds the 65536 byte limit"),
    "type is a list": (b'{"type": [1], "schema_version": 3}', "type [1]"),
    "type is an object": (b'{"type": {"a": 1}, "schema_version": 3}', "type {'a': 1}"),
    "v1, type is a list": (b'{"type": [1], "schema_version": 1}', "type [1]"),
    "v1, type is an object": (b'{"type": {"a": 1}, "schema_version": 1}', "type {'a': 1}"),
    "schema_version '2'": (lambda noun: _body(noun, schema_version="2"), "must be an integer"),
    "schema_version true": (lambda noun: _body(noun, schema_version=True), "must be an integer"),
    "schema_version 2.0": (lambda noun: _body(noun, schema_version=2.0), "must be an integer"),
    "schema_version 1.0": (lambda noun: _body(noun, schema_version=1.0), "must be an integer"),
    "schema_version null": (lambda noun: _body(noun, schema_version=None), "must be an integer"),
    "NaN in a field": (lambda noun: _body(noun, extra=float("nan")), "breaks the contract"),
    "unknown field": (lambda noun: _body(noun, surprise=1), "surprise"),
}


@every_kind
@pytest.mark.parametrize("case", list(NAMED))
def test_named_hostile_records_are_decode_errors_with_a_reason(noun: str, case: str) -> None:
    raw, expected = NAMED[case]
    if callable(raw):
        raw = raw(noun)
    elif isinstance(raw, str):
        raw = raw.encode()
    assert raw is None or len(raw) <= MAX_RECORD_BYTES or case == "oversized"
    reason = _verdict(KINDS[noun], raw)
    assert isinstance(reason, str), (case, reason)
    assert expected in reason, (case, reason)


@every_kind
def test_an_upcaster_that_fails_is_a_decode_error(
    noun: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(payload: dict[str, Any]) -> dict[str, Any]:
        return {**payload, "renamed": payload["no such field"]}

    monkeypatch.setitem(codec.UPCASTERS, 0, broken)
    reason = _verdict(KINDS[noun], _body(noun, schema_version=0))
    assert reason == f"undecodable {noun} record: KeyError: 'no such field'"


JSON_LEAVES = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats()
    | st.text(max_size=40)
)
JSON_VALUES = st.recursive(
    JSON_LEAVES,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
    ),
    max_leaves=12,
)


@st.composite
def mutated_records(draw: st.DrawFn) -> tuple[str, bytes]:
    """A valid record of some kind with fields replaced, dropped or added, as JSON or bytes."""
    noun = draw(st.sampled_from(list(VALID)))
    body = dict(VALID[draw(st.sampled_from(list(VALID)))])
    for name in draw(st.lists(st.sampled_from([*body, "extra", "filter", "settings"]), max_size=3)):
        if draw(st.booleans()):
            body[name] = draw(JSON_VALUES)
        else:
            body.pop(name, None)
    raw = json.dumps(body).encode()
    if draw(st.booleans()):
        at = draw(st.integers(min_value=0, max_value=len(raw)))
        raw = raw[:at] + draw(st.binary(max_size=4)) + raw[at + draw(st.integers(0, 3)) :]
    return noun, raw


@settings(max_examples=1500, deadline=None)
@given(raw=st.binary(max_size=300), noun=st.sampled_from(list(KINDS)))
def test_arbitrary_bytes_are_a_model_or_a_decode_error(raw: bytes, noun: str) -> None:
    _verdict(KINDS[noun], raw)


@pytest.mark.slow
@settings(max_examples=1500, deadline=None)
@given(value=JSON_VALUES, noun=st.sampled_from(list(KINDS)))
def test_arbitrary_json_is_a_model_or_a_decode_error(value: Any, noun: str) -> None:
    _verdict(KINDS[noun], json.dumps(value).encode())


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=mutated_records())
def test_mutated_records_are_a_model_or_a_decode_error(case: tuple[str, bytes]) -> None:
    noun, raw = case
    _verdict(KINDS[noun], raw)


# The readers: each turns what the decoder refuses into its own outcome, and never stops.

HOSTILE = [
    BIG.encode(),
    b"[" * 20_000 + b"]" * 20_000,
    b"\xff\xfe{}",
    b'{"type": [1], "schema_version": 1}',
    b'{"type": [1], "schema_version": 3}',
    b"[1, 2]",
]


@dataclass
class _Record:
    topic: str
    value: bytes | None
    partition: int = 0
    offset: int = 0
    key: bytes | None = b"k"
    headers: Sequence[tuple[str, bytes]] = field(default_factory=list)
    timestamp: int = 0
    timestamp_type: int = 0


def _decoding_ingestor(topics: Topics) -> Ingestor:
    """An ingestor for `Ingestor.decode` alone: decoding never touches the database, the
    projector (but for its topics), the dead letters or the clock."""
    return Ingestor(
        None,  # type: ignore[arg-type]
        SimpleNamespace(topics=topics),  # type: ignore[arg-type]
        "registry",
        None,  # type: ignore[arg-type]
        lambda: NOW,
    )


def test_the_registry_dead_letters_every_record_the_decoder_refuses() -> None:
    topics = Topics()
    ingestor = _decoding_ingestor(topics)
    batch = {
        topic: [_Record(topic, value, offset=n) for n, value in enumerate(HOSTILE)]
        for topic in (topics.events, topics.commands)
    }
    decoded = ingestor.decode(batch)
    for (topic, _), part in decoded.items():
        assert part.offsets == list(range(len(HOSTILE)))
        for value, letter in zip(HOSTILE, part.messages, strict=True):
            assert isinstance(letter, DeadLetter), (topic, value[:20])
            noun = "command" if topic == topics.commands else "event"
            assert letter.reason == _verdict(KINDS[noun], value)


def test_the_gateway_skips_every_revocation_the_decoder_refuses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    watcher = RevocationWatcher(connection("unused:1"), "revocations", ["acme"], RevocationTable())
    key = record_key("acme", S1)
    with caplog.at_level(logging.WARNING):
        for value in HOSTILE:
            watcher.apply(key, value)
    assert watcher.records_rejected == len(HOSTILE)
    assert len(watcher.table) == 0
    for value in HOSTILE:
        assert str(_verdict(REVOCATIONS, value)) in caplog.text
    watcher.apply(key, _body("revocation", valid_until=(NOW + timedelta(days=3650)).isoformat()))
    assert key in watcher.table


async def test_the_demo_service_ignores_every_settings_record_the_decoder_refuses() -> None:
    demo = DemoSettings(gateway_tenant_id="acme")
    fallback = StaticPolicySource(DEFAULT_POLICIES["browser"], DEFAULT_POLICIES["mobile"])
    source = SettingsTopicPolicySource(demo, fallback)
    source.mark_current()  # read to its end: a source not yet current refuses to answer
    for value in HOSTILE:
        source.apply(b"acme", value)
    assert await source.current("acme", SessionType.browser) == DEFAULT_POLICIES["browser"]
    source.apply(b"acme", _body("settings"))
    published = await source.current("acme", SessionType.browser)
    assert published.max_session_seconds == 60


def test_the_registry_decodes_records_of_partitions_interleaved_into_their_own() -> None:
    """`Ingestor.decode` decodes runs of one partition at once: records of several partitions
    (and topics) interleaved in one sequence still land in their own partition, in order, each
    with its own verdict."""
    topics = Topics()
    ingestor = _decoding_ingestor(topics)
    event, command = _body("event"), _body("command")
    sequence = [
        _Record(topics.events, event, partition=0, offset=0),
        _Record(topics.events, HOSTILE[2], partition=1, offset=0),
        _Record(topics.events, event, partition=0, offset=1),
        _Record(topics.commands, command, partition=0, offset=5),
        _Record(topics.events, event, partition=1, offset=1),
        _Record(topics.commands, event, partition=0, offset=6),  # an event is no command
        _Record(topics.events, HOSTILE[0], partition=0, offset=2),
    ]
    decoded = ingestor.decode({"all": sequence})
    assert {tp: part.offsets for tp, part in decoded.items()} == {
        (topics.events, 0): [0, 1, 2],
        (topics.events, 1): [0, 1],
        (topics.commands, 0): [5, 6],
    }
    kinds = {
        tp: [type(message).__name__ for message in part.messages] for tp, part in decoded.items()
    }
    assert kinds == {
        (topics.events, 0): ["SessionCreated", "SessionCreated", "DeadLetter"],
        (topics.events, 1): ["DeadLetter", "SessionCreated"],
        (topics.commands, 0): ["TerminateSessions", "DeadLetter"],
    }
    for part in decoded.values():
        assert [record.offset for record in part.records if record is not None] == part.offsets
