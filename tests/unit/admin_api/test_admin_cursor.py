"""Keyset cursors: opaque, round-trip every sort key type, refuse anything we did not issue."""

from __future__ import annotations

import base64
import json
from datetime import UTC, datetime, timedelta, timezone

import pytest

from admin_api.domain.listing import BadCursor, Position, decode_cursor, encode_cursor

WHEN = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)


@pytest.mark.parametrize(
    "position",
    [
        Position("-last_activity_at", WHEN, "s-1"),
        Position("created_at", WHEN, "s-2"),
        Position("user_name", 'Zoë "quoted" ,', "s-3"),
        Position("-ip_address", bytes(10) + b"\xff\xff" + bytes([10, 0, 0, 1]), "s-4"),
        Position("device", "", "~!"),
    ],
)
def test_round_trip(position: Position) -> None:
    cursor = encode_cursor(position)
    assert "=" not in cursor and "/" not in cursor and "+" not in cursor
    assert decode_cursor(cursor, position.sort) == position


def b64(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode()


@pytest.mark.parametrize(
    ("cursor", "sort"),
    [
        ("", "user_name"),
        ("%%%", "user_name"),
        (b64([1, 2]), "user_name"),
        (b64({"s": "user_name", "v": "a"}), "user_name"),
        (b64({"s": "user_name", "v": 5, "id": "x"}), "user_name"),
        (b64({"s": "user_name", "v": "a\x00", "id": "x"}), "user_name"),
        (b64({"s": "user_name", "v": "a", "id": "x" * 129}), "user_name"),
        (b64({"s": "created_at", "v": "2026-01-01T00:00:00", "id": "x"}), "created_at"),
        (b64({"s": "ip_address", "v": "zz", "id": "x"}), "ip_address"),
        (b64({"s": "user_name", "v": "a", "id": "x"}), "-user_name"),
    ],
)
def test_refuses_foreign_or_mismatched_cursors(cursor: str, sort: str) -> None:
    with pytest.raises(BadCursor, match="cursor"):
        decode_cursor(cursor, sort)  # type: ignore[arg-type]


def test_times_come_back_in_utc() -> None:
    east = WHEN.astimezone(timezone(timedelta(hours=5)))
    body = b64({"s": "expires_at", "v": east.isoformat(), "id": "x"})
    value = decode_cursor(body, "expires_at").value
    assert value == WHEN and isinstance(value, datetime) and value.utcoffset() == timedelta(0)
