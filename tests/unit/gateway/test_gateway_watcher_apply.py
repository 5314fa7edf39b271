"""How the watcher folds single revocation records into its table (no broker needed)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from session_contracts.codec import encode
from session_contracts.models import SessionRevoked, SessionType, TerminationReason

NOW = datetime(2030, 1, 1, tzinfo=UTC)


def watcher(grace: float = 0.0) -> RevocationWatcher:
    return RevocationWatcher(
        "unused:1",
        "revocations",
        "acme",
        RevocationTable(),
        grace_seconds=grace,
        clock=NOW.timestamp,
    )


def record(session_id: str = "s1", tenant: str = "acme", valid_for: float = 3600) -> bytes:
    return encode(
        SessionRevoked(
            tenant_id=tenant,
            session_id=session_id,
            session_type=SessionType.mobile,
            revoked_at=NOW,
            reason=TerminationReason.security,
            valid_until=NOW + timedelta(seconds=valid_for),
        )
    )


def test_a_record_revokes_and_a_tombstone_forgets() -> None:
    w = watcher()
    w.apply(b"s1", record())
    assert b"s1" in w.table
    w.apply(b"s1", None)
    assert b"s1" not in w.table
    assert w.records_applied == 1


def test_other_tenants_are_ignored() -> None:
    w = watcher()
    w.apply(b"s1", record(tenant="globex"))
    assert len(w.table) == 0
    assert w.records_rejected == 0


def test_a_record_already_past_valid_until_plus_grace_is_not_kept() -> None:
    w = watcher(grace=60)
    w.apply(b"old", record("old", valid_for=-120))
    w.apply(b"skewed", record("skewed", valid_for=-30))  # within the clock-skew grace
    assert b"old" not in w.table
    assert b"skewed" in w.table


@pytest.mark.parametrize(
    ("key", "value", "why"),
    [
        (None, b"{}", "without a key"),
        (b"s1", b"{not json", "malformed JSON"),
        (b"s1", b"[1, 2]", "not a session.revoked"),
        (b"s1", json.dumps({"type": "session.revoked", "schema_version": 9}).encode(), "newer"),
        (b"s1", json.dumps({"type": "session.revoked", "schema_version": 1}).encode(), "tenant"),
        (b"s1", b"x" * 70_000, "exceeds"),
        (b"s1", b"\xff\xfe", "malformed JSON"),
    ],
)
def test_broken_records_are_counted_logged_and_skipped(
    key: bytes | None, value: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    w = watcher()
    w.apply(key, value)
    assert w.records_rejected == 1
    assert len(w.table) == 0
    assert why in caplog.text


def test_a_rejected_records_log_line_holds_only_escaped_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = "x\nERROR forged\u2028line\u202eevil\x1b[2J\x85\u2066"
    payload = json.loads(record())
    payload[hostile] = 1  # a field name: the reason quotes it
    w = watcher()
    w.apply("s1\n\u202e".encode(), json.dumps(payload).encode())
    assert w.records_rejected == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "x\\nERROR forged\\u2028line\\u202eevil\\u001b[2J\\u0085\\u2066" in line
    assert not any(c in line for c in "\n\r\x1b\x85\u2028\u202e\u2066"), line


def test_staleness_counts_from_start_until_the_broker_first_answers() -> None:
    clock = [1000.0]
    w = RevocationWatcher("unused:1", "t", "acme", RevocationTable(), monotonic=lambda: clock[0])
    clock[0] += 7
    assert w.staleness_seconds() == 7
    assert not w.ready
