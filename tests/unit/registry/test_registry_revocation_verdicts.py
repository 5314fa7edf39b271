"""What the last record under each key of the revocations topic says (`last_verdicts`): the
revocation it keeps, or nothing a gateway started after compaction would hold."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import SessionRevoked, SessionType, TerminationReason
from session_registry.service_layer.revocation_guard import last_verdicts

NOW = datetime(2030, 1, 1, tzinfo=UTC)
A, B = session_handle("acme", "a"), session_handle("acme", "b")


@dataclass(frozen=True)
class Record:
    key: bytes | None
    value: bytes | None


def revoked(handle: str, hours: int = 1, tenant: str = "acme") -> bytes:
    return encode(
        SessionRevoked(
            tenant_id=tenant,
            session_id=handle,
            session_type=SessionType.mobile,
            revoked_at=NOW,
            reason=TerminationReason.admin,
            valid_until=NOW + timedelta(hours=hours),
        )
    )


def test_the_last_record_of_each_key_decides() -> None:
    a, b = record_key("acme", A), record_key("acme", B)
    verdicts = last_verdicts(
        [
            Record(a, None),
            Record(a, revoked(A)),  # the tombstone before it no longer counts
            Record(b, revoked(B)),
            Record(b, None),  # a tombstone after it does
        ]
    )
    assert verdicts == {("acme", A): NOW + timedelta(hours=1), ("acme", B): None}


def test_a_value_of_another_session_or_tenant_or_unreadable_says_nothing() -> None:
    a = record_key("acme", A)
    for value in (revoked(B), revoked(A, tenant="globex"), b"{not json", b""):
        assert last_verdicts([Record(a, value)]) == {("acme", A): None}, value


def test_keys_no_gateway_files_a_revocation_under_are_left_out() -> None:
    records = [
        Record(None, revoked(A)),
        Record(b"a-v1-credential", None),  # a v1 key: the session id itself
        Record(b"bad tenant/" + A.encode(), None),
        Record(b"acme/not-a-handle", None),
    ]
    assert last_verdicts(records) == {}
