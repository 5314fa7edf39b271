"""Every time on the wire is an RFC 3339 string with an offset, and nothing else.

One type (`session_contracts.models.Timestamp`) carries the rule into every record, command,
request body and query parameter; pydantic's lenient datetime parsing (Unix times from numbers
and numeric strings, ISO 8601 shapes outside RFC 3339) never runs on anything else.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import TypeAdapter, ValidationError

from session_contracts.codec import DecodeError, decode_command, decode_event, encode
from session_contracts.handles import session_handle
from session_contracts.models import (
    RFC3339_PATTERN,
    SessionActivity,
    SessionRevoked,
    SessionSettingsChanged,
    Timestamp,
)

SCHEMAS = Path(__file__).resolve().parents[3] / "schemas"
timestamps: TypeAdapter[datetime] = TypeAdapter(Timestamp)


@pytest.mark.parametrize(
    ("text", "utc"),
    [
        ("2026-11-30T09:00:00Z", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30t09:00:00z", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30T10:00:00+01:00", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30T04:30:00-04:30", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30T09:00:00-00:00", datetime(2026, 11, 30, 9, tzinfo=UTC)),
        ("2026-11-30T09:00:00.25Z", datetime(2026, 11, 30, 9, 0, 0, 250000, tzinfo=UTC)),
        ("0001-01-01T00:00:00Z", datetime(1, 1, 1, tzinfo=UTC)),
        ("0001-01-02T00:00:00+23:59", datetime(1, 1, 1, 0, 1, tzinfo=UTC)),
        ("9999-12-31T23:59:59.999999-00:00", datetime.max.replace(tzinfo=UTC)),
    ],
)
def test_rfc3339_with_an_offset_is_read_and_normalised_to_utc(text: str, utc: datetime) -> None:
    value = timestamps.validate_python(text)
    assert value == utc and value.utcoffset() == timedelta(0)
    assert timestamps.validate_json(json.dumps(text)) == utc


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("0", "Unix times are not read"),
        ("0.5", "Unix times are not read"),
        ("-1", "Unix times are not read"),
        ("1700000000", "Unix times are not read"),
        ("1.7e9", "Unix times are not read"),
        ("2026-11-30", "a date alone is not a timestamp"),
        ("2026-11-30T00:00:00", "no offset"),
        ("2026-11-30T00:00", "no offset"),
        ("2026-11-30 00:00:00", "no offset"),
        ("2026-11-30 00:00:00Z", "not an RFC 3339 timestamp"),
        ("2026-11-30T00:00Z", "not an RFC 3339 timestamp"),
        ("2026-11-30T00:00:00+0100", "not an RFC 3339 timestamp"),
        ("2026-11-30T00:00:00+01", "not an RFC 3339 timestamp"),
        ("20261130T000000Z", "not an RFC 3339 timestamp"),
        ("2026-W48-1T00:00:00Z", "not an RFC 3339 timestamp"),
        ("\u0662\u0660\u0662\u0666-11-30T00:00:00Z", "not an RFC 3339 timestamp"),
        ("", "not an RFC 3339 timestamp"),
        ("2026-02-30T00:00:00Z", "day value is outside expected range"),
        ("9999-12-31T23:00:00-01:00", "out of range: on 0001-01-01 and 9999-12-31"),
        ("0001-01-01T00:00:00+00:04", "out of range: on 0001-01-01 and 9999-12-31"),
    ],
)
def test_other_text_is_refused_with_a_reason(text: str, reason: str) -> None:
    parsers: tuple[Callable[[str], object], ...] = (
        timestamps.validate_python,
        lambda t: timestamps.validate_json(json.dumps(t)),
    )
    for parse in parsers:
        with pytest.raises(ValidationError) as caught:
            parse(text)
        assert reason in str(caught.value)


@pytest.mark.parametrize("value", [0, 0.5, -1, 1700000000, 1.7e9, True, None, [], {}])
def test_json_values_other_than_strings_are_refused(value: object) -> None:
    with pytest.raises(ValidationError, match="RFC 3339 string"):
        timestamps.validate_json(json.dumps(value))
    with pytest.raises(ValidationError, match="RFC 3339 string"):
        timestamps.validate_python(value)


def test_times_made_in_code_keep_working_but_need_an_offset() -> None:
    east = datetime(2026, 11, 30, 10, tzinfo=timezone(timedelta(hours=1)))
    assert timestamps.validate_python(east) == datetime(2026, 11, 30, 9, tzinfo=UTC)
    with pytest.raises(ValidationError, match="offset"):
        timestamps.validate_python(datetime(2026, 11, 30, 9))


def _event(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "session.activity",
        "schema_version": 3,
        "event_id": str(uuid.uuid4()),
        "occurred_at": "2026-11-30T09:00:00Z",
        "tenant_id": "acme",
        "session_id": session_handle("acme", "s-1"),
        **overrides,
    }


def _command(**overrides: Any) -> dict[str, Any]:
    return {
        "type": "sessions.terminate",
        "schema_version": 3,
        "command_id": str(uuid.uuid4()),
        "requested_at": "2026-11-30T09:00:00Z",
        "tenant_id": "acme",
        "requested_by": "admin-1",
        "filter": {},
        **overrides,
    }


@pytest.mark.parametrize("numeric", [0, 0.5, -1, 1700000000])
def test_records_with_a_numeric_time_are_refused_by_the_codec_naming_the_field(
    numeric: float,
) -> None:
    with pytest.raises(DecodeError) as event:
        decode_event(json.dumps(_event(occurred_at=numeric)).encode())
    assert "session.activity.occurred_at" in event.value.reason
    assert "Unix times" in event.value.reason
    with pytest.raises(DecodeError) as command:
        decode_command(json.dumps(_command(requested_at=numeric)).encode())
    assert "requested_at" in command.value.reason
    with pytest.raises(DecodeError) as in_filter:
        decode_command(json.dumps(_command(filter={"created_from": numeric})).encode())
    assert "filter.created_from" in in_filter.value.reason


def test_a_numeric_time_as_a_string_in_a_record_is_refused_too() -> None:
    with pytest.raises(DecodeError, match=r"occurred_at.*Unix times"):
        decode_event(json.dumps(_event(occurred_at="1700000000")).encode())


def test_records_other_services_read_refuse_numeric_times() -> None:
    revoked = {
        "type": "session.revoked",
        "schema_version": 3,
        "tenant_id": "acme",
        "session_id": session_handle("acme", "s-1"),
        "session_type": "browser",
        "revoked_at": "2026-11-30T09:00:00Z",
        "reason": "admin",
        "valid_until": 1800000000,
    }
    with pytest.raises(ValidationError, match="valid_until"):
        SessionRevoked.model_validate_json(json.dumps(revoked))
    changed = {
        "type": "session_settings.changed",
        "schema_version": 3,
        "event_id": str(uuid.uuid4()),
        "occurred_at": 1700000000,
        "tenant_id": "acme",
        "changed_by": "admin-1",
        "settings": {},
    }
    with pytest.raises(ValidationError, match="occurred_at"):
        SessionSettingsChanged.model_validate_json(json.dumps(changed))


def test_records_we_write_carry_rfc3339_strings() -> None:
    event = SessionActivity.model_validate(_event(occurred_at="2026-11-30T10:00:00+01:00"))
    written = json.loads(encode(event))["occurred_at"]
    assert written == "2026-11-30T09:00:00Z"
    assert decode_event(encode(event)) == event


@pytest.mark.parametrize(
    ("schema", "field"),
    [
        ("session.activity", "occurred_at"),
        ("session.revoked", "valid_until"),
        ("sessions.terminate", "requested_at"),
    ],
)
def test_the_published_schemas_state_the_rule(schema: str, field: str) -> None:
    document = json.loads((SCHEMAS / f"{schema}.schema.json").read_text())
    rule = document["properties"][field]
    assert rule["type"] == "string" and rule["format"] == "date-time"
    pattern = re.compile(rule["pattern"])
    assert pattern.search("2026-11-30T09:00:00Z") and pattern.search("2026-11-30T09:00:00+01:00")
    for wrong in ("1700000000", "2026-11-30", "2026-11-30T09:00:00"):
        assert not pattern.search(wrong), wrong


def _two(low: int, high: int) -> st.SearchStrategy[str]:
    return st.integers(low, high).map(lambda n: f"{n:02d}")


RFC3339_DATE_TIMES = st.builds(
    "{}T{}:{}:{}{}{}".format,
    st.dates().map(str),
    _two(0, 23),
    _two(0, 59),
    _two(0, 59),
    st.just("") | st.text("0123456789", min_size=1, max_size=9).map(".".__add__),
    st.just("Z") | st.builds("{}{}:{}".format, st.sampled_from("+-"), _two(0, 23), _two(0, 59)),
)
"""Every RFC 3339 `date-time` of years 1-9999 (what a client or a fuzzer generates)."""


@settings(max_examples=2000, database=None)
@given(RFC3339_DATE_TIMES)
def test_what_the_published_pattern_admits_is_exactly_what_is_read(text: str) -> None:
    admitted = re.fullmatch(RFC3339_PATTERN, text) is not None
    try:
        timestamps.validate_python(text)
        read = True
    except ValidationError:
        read = False
    assert admitted == read, text
    edge_day = text.startswith(("0001-01-01", "9999-12-31"))
    assert admitted or (edge_day and not text.endswith(("Z", "+00:00", "-00:00"))), text
