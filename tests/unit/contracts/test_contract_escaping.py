"""Reasons are escaped in one place (`escape_reason`) before a log line or a dead letter holds
them: control characters, line and paragraph separators, bidirectional controls and lone
surrogates become readable escapes, and a reason is at most 1024 characters."""

from __future__ import annotations

import json
import unicodedata
import uuid
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from session_contracts.codec import DecodeError, decode_event
from session_contracts.escaping import MAX_REASON_CHARS, escape_reason
from session_contracts.handles import session_handle
from session_registry.adapters.dead_letters import (
    CUT_AT,
    HEADERS_DROPPED,
    REASON,
    DeadLetter,
    header_size,
)

BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
UNSAFE = (
    {chr(c) for c in range(0x20)}
    | {chr(c) for c in range(0x7F, 0xA0)}
    | set(BIDI_CONTROLS)
    | {"\u2028", "\u2029"}
    | {chr(c) for c in range(0xD800, 0xE000)}
)
HOSTILE = "a\nb\r\tc\x00\x1b[31m\x7f\x85\x9f\u2028\u2029\u202eevil\u2066\u200f"


def test_each_unsafe_character_is_escaped_readably() -> None:
    assert escape_reason("line\nforged") == "line\\nforged"
    assert escape_reason("\r\t") == "\\r\\t"
    assert escape_reason("\x00\x1b[31m\x7f") == "\\u0000\\u001b[31m\\u007f"
    assert escape_reason("\x85\x9f") == "\\u0085\\u009f"
    assert escape_reason("\u2028\u2029") == "\\u2028\\u2029"
    assert escape_reason("gpj.\u202eexe") == "gpj.\\u202eexe"
    assert escape_reason(BIDI_CONTROLS) == "".join(f"\\u{ord(c):04x}" for c in BIDI_CONTROLS)
    assert escape_reason("\ud800") == "\\ud800"
    # ordinary text, other languages and Python's own escapes are left as they are
    for kept in ["unknown event type 'x'", "Łódź — 東京 — عربى", "found '\\x00'", "é\u00a0"]:
        assert escape_reason(kept) == kept


def test_every_bidi_control_and_separator_of_unicode_is_covered() -> None:
    for code in range(0x110000):
        char = chr(code)
        if unicodedata.category(char) in {"Cc", "Zl", "Zp", "Cs"}:
            assert char in UNSAFE, hex(code)
    assert escape_reason("".join(sorted(UNSAFE))).isascii()


@settings(max_examples=300, database=None)
@given(st.text(alphabet=st.characters(codec=None), max_size=3000), st.integers(64, 2000))
def test_nothing_unsafe_survives_the_result_is_bounded_and_stable(text: str, limit: int) -> None:
    escaped = escape_reason(text, limit)
    assert not UNSAFE.intersection(escaped)
    assert len(escaped) <= limit
    escaped.encode()  # always valid UTF-8, as a Kafka header must be
    assert escape_reason(escaped, limit) == escaped


def test_a_long_reason_keeps_its_beginning_and_end_and_is_never_cut_inside_an_escape() -> None:
    escaped = escape_reason("\u202e" * 5000 + " is what is wrong")
    assert len(escaped) <= MAX_REASON_CHARS
    head, _, tail = escaped.partition(" ...[")
    cut, _, tail = tail.partition(" characters cut]... ")
    assert head == "\\u202e" * (len(head) // 6)
    assert tail.endswith(" is what is wrong")
    assert tail.removesuffix(" is what is wrong") == "\\u202e" * ((len(tail) - 17) // 6)
    assert len(head) // 6 + int(cut) + (len(tail) - 17) // 6 == 5000
    number = escape_reason("schema_version " + "9" * 4000 + " is newer than this consumer reads")
    assert number.endswith("999 is newer than this consumer reads")
    assert escape_reason("x" * MAX_REASON_CHARS) == "x" * MAX_REASON_CHARS
    with pytest.raises(ValueError, match="at least"):
        escape_reason("x", 10)


def _activity(**changes: Any) -> bytes:
    payload: dict[str, Any] = {
        "type": "session.activity",
        "schema_version": 3,
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-30T09:00:00Z",
        "tenant_id": "acme",
        "session_id": session_handle("acme", "s-1"),
    }
    payload.update(changes)
    return json.dumps(payload).encode()


HOSTILE_RECORDS = {
    # pydantic quotes the offending character of a UUID raw
    "value": _activity(event_id="\u202e\n0000"),
    "newline in a value": _activity(event_id="\nERROR forged line"),
    # a field name is the error's location, quoted raw
    "field name": _activity(**{HOSTILE: 1}),
    "huge field name": _activity(**{"\u202e" * 10_000: 1}),
}


@pytest.mark.parametrize("raw", HOSTILE_RECORDS.values(), ids=HOSTILE_RECORDS.keys())
def test_the_decoders_reasons_are_escaped_and_bounded(raw: bytes) -> None:
    with pytest.raises(DecodeError) as refused:
        decode_event(raw)
    reason = refused.value.reason
    assert not UNSAFE.intersection(reason), reason
    assert str(refused.value) == reason
    assert len(reason) <= MAX_REASON_CHARS
    assert "breaks the contract" in reason
    assert "\\u202e" in reason or "\\n" in reason


def test_the_field_name_is_still_readable_in_the_reason() -> None:
    with pytest.raises(DecodeError) as refused:
        decode_event(HOSTILE_RECORDS["field name"])
    assert (
        "a\\nb\\r\\tc\\u0000\\u001b[31m\\u007f\\u0085\\u009f\\u2028\\u2029\\u202eevil"
        "\\u2066\\u200f: Extra inputs are not permitted"
    ) in refused.value.reason


def test_a_dead_letter_header_is_escaped_whatever_reason_it_was_given() -> None:
    letter = DeadLetter("t", 0, 1, b"k", b"v", (), reason=HOSTILE * 200)
    header = dict(letter.dlq_headers("registry"))[REASON]
    assert header is not None
    reason = header.decode()
    assert not UNSAFE.intersection(reason)
    assert len(reason) <= MAX_REASON_CHARS
    assert reason.startswith("a\\nb\\r\\tc\\u0000")


def test_a_dead_letter_of_many_empty_headers_keeps_as_many_as_fit_and_says_how_many_not() -> None:
    """A header costs its name, its value and its two lengths: a record of a million empty
    headers (a few KB compressed) must not make a dead letter over the producer's 1 MiB."""
    headers = tuple((f"{n % 10}", b"") for n in range(1_000_000))
    letter = DeadLetter("t", 0, 1, b"k" * CUT_AT, b"v" * CUT_AT, headers, reason="big")
    sent = letter.dlq_headers("registry")
    kept = [h for h in sent if not h[0].startswith("dlq.")]
    assert len(kept) == CUT_AT // 11
    assert dict(sent)[HEADERS_DROPPED] == str(len(headers) - len(kept)).encode()
    on_the_wire = sum(header_size(h) for h in sent) + 2 * CUT_AT
    assert on_the_wire < 1024 * 1024 - 4096
