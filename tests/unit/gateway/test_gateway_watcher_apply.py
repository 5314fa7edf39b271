"""How the watcher folds single revocation records into its table (no broker needed).

Keys are tenant-qualified (`<tenant>/<handle>`); the attacks tried here are those of issue 12
item 4: another tenant's records (same handle, tombstones, shorter revocations, keys that lie)
must never un-revoke or shorten a revocation, and no record stops the watcher.
"""

from __future__ import annotations

import json
import logging
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from auth_gateway.follower import CompactedTopicFollower
from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from fresh_topics import connection
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.models import SessionRevoked, SessionType, TerminationReason

NOW = datetime(2030, 1, 1, tzinfo=UTC)
CREDENTIAL = "k7Qd1S9yq0Xw-credential-of-a-session"


def watcher(grace: float = 0.0, tenants: list[str] | None = None) -> RevocationWatcher:
    return RevocationWatcher(
        connection("unused:1"),
        "revocations",
        ["acme"] if tenants is None else tenants,
        RevocationTable(),
        grace_seconds=grace,
        clock=NOW.timestamp,
    )


def all_tenants_watcher() -> RevocationWatcher:
    w = RevocationWatcher(
        connection("unused:1"),
        "revocations",
        None,
        RevocationTable(),
        grace_seconds=0,
        clock=NOW.timestamp,
    )
    return w


def handle(credential: str = CREDENTIAL, tenant: str = "acme") -> str:
    return session_handle(tenant, credential)


def key(credential: str = CREDENTIAL, tenant: str = "acme") -> bytes:
    return record_key(tenant, handle(credential, tenant))


def record(
    session_handle_: str | None = None, tenant: str = "acme", valid_for: float = 3600
) -> bytes:
    return encode(
        SessionRevoked(
            tenant_id=tenant,
            session_id=session_handle_ or handle(tenant=tenant),
            session_type=SessionType.mobile,
            revoked_at=NOW,
            reason=TerminationReason.security,
            valid_until=NOW + timedelta(seconds=valid_for),
        )
    )


def v1_record(credential: str, tenant: str = "acme", valid_for: float = 3600) -> bytes:
    """A revocation as a v1 registry wrote it: the session id is the credential."""
    payload = json.loads(record(tenant=tenant, valid_for=valid_for))
    payload.update(schema_version=1, session_id=credential)
    return json.dumps(payload).encode()


def test_a_record_revokes_under_its_tenant_qualified_key() -> None:
    w = watcher()
    w.apply(key(), record())
    assert key() in w.table
    assert w.records_applied == 1
    assert CREDENTIAL.encode() not in w.table  # never filed by credential


def test_a_tombstone_after_valid_until_forgets_an_earlier_one_is_ignored() -> None:
    w = watcher()
    w.apply(key(), record(valid_for=10))
    w.apply(key(), None)  # the registry tombstones after valid_until; this one is early
    assert key() in w.table
    assert w.tombstones_ignored == 1
    later = watcher()
    later.table.add(key(), NOW.timestamp() - 5)  # an entry whose valid_until has passed
    later.apply(key(), None)
    assert key() not in later.table


def test_other_tenants_are_not_kept_by_a_single_tenant_watcher() -> None:
    w = watcher()
    w.apply(key(tenant="globex"), record(tenant="globex"))
    assert len(w.table) == 0
    assert w.records_rejected == 0


def test_a_watcher_without_a_tenant_list_keeps_each_tenant_under_its_own_key() -> None:
    w = all_tenants_watcher()
    w.apply(key(), record())
    w.apply(key(tenant="globex"), record(tenant="globex"))
    assert key() in w.table and key(tenant="globex") in w.table
    assert handle() != handle(tenant="globex")  # one credential, two tenants, two handles


def test_a_record_already_past_valid_until_plus_grace_is_not_kept() -> None:
    w = watcher(grace=60)
    w.apply(key("old"), record(handle("old"), valid_for=-120))
    w.apply(key("skewed"), record(handle("skewed"), valid_for=-30))  # within the grace
    assert key("old") not in w.table
    assert key("skewed") in w.table


def test_a_later_record_never_moves_valid_until_earlier() -> None:
    w = watcher()
    w.apply(key(), record(valid_for=3600))
    until = w.table.until(key())
    w.apply(key(), record(valid_for=60))  # same session, shorter
    w.apply(key(), record(valid_for=-60))  # same session, already over
    assert w.table.until(key()) == until
    w.apply(key(), record(valid_for=7200))  # longer: moves later
    assert w.table.until(key()) == until + 3600  # type: ignore[operator]


# One tenant's producer, whatever it writes: A's revocation of CREDENTIAL stays, unshortened.
A_HANDLE = handle()
B_RECORDS: list[tuple[str, bytes | None, bytes | None]] = [
    ("B revokes the same handle string", record_key("globex", A_HANDLE), None),
    ("B's tombstone under B's key of the handle", record_key("globex", A_HANDLE), None),
    ("B's tombstone under A's key, early", record_key("acme", A_HANDLE), None),
    ("B's value under A's key", record_key("acme", A_HANDLE), None),
    ("B's shorter record of its own handle", key(tenant="globex"), None),
]


def _b_value(name: str, valid_for: float) -> bytes | None:
    if "tombstone" in name:
        return None
    if name == "B's shorter record of its own handle":
        return record(tenant="globex", valid_for=valid_for)
    return record(A_HANDLE, tenant="globex", valid_for=valid_for)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([r[0] for r in B_RECORDS]), st.integers(-10_000, 10_000)),
        max_size=30,
    ),
    st.booleans(),
)
def test_no_sequence_of_another_tenants_records_undoes_or_shortens_a_revocation(
    sequence: list[tuple[str, int]], every_tenant: bool
) -> None:
    w = all_tenants_watcher() if every_tenant else watcher()
    w.apply(key(), record(valid_for=3600))
    until = w.table.until(key())
    keys = {name: k for name, k, _ in B_RECORDS}
    for name, valid_for in sequence:
        w.apply(keys[name], _b_value(name, valid_for))
    assert key() in w.table
    assert w.table.until(key()) == until


def test_a_record_whose_key_and_value_disagree_is_skipped_and_counted(
    caplog: pytest.LogCaptureFixture,
) -> None:
    w = all_tenants_watcher()
    w.apply(key(), record(tenant="globex"))  # A's key, B's value
    w.apply(key(tenant="globex"), record())  # B's key, A's value
    w.apply(key("another"), record())  # A's key of another session
    w.apply(CREDENTIAL.encode() + b"x", record())  # a raw key naming another credential
    assert len(w.table) == 0
    assert w.records_rejected == 4
    assert "does not name the session its value names" in caplog.text


def test_a_v1_record_is_enforced_against_the_handle_of_the_same_credential() -> None:
    w = watcher()
    w.apply(CREDENTIAL.encode(), v1_record(CREDENTIAL))  # v1: keyed and named by credential
    assert key() in w.table
    assert w.records_rejected == 0
    w.apply(b"someone-else", v1_record(CREDENTIAL))  # a v1 key naming another session
    w.apply(CREDENTIAL.encode(), v1_record(CREDENTIAL, tenant="globex"))  # other tenant
    assert w.records_rejected == 1
    assert len(w.table) == 1


def test_a_v1_tombstone_names_no_tenant_and_removes_nothing() -> None:
    w = all_tenants_watcher()
    w.apply(CREDENTIAL.encode(), v1_record(CREDENTIAL))
    w.apply(CREDENTIAL.encode(), None)
    w.apply(None, None)
    w.apply(b"acme/not-a-handle", None)
    assert key() in w.table
    assert w.tombstones_ignored == 3


@pytest.mark.parametrize(
    ("record_key_", "value", "why"),
    [
        (None, b"{}", "without a key"),
        (b"acme/x", b"{not json", "malformed JSON"),
        (b"acme/x", b"[1, 2]", "not a session.revoked"),
        (b"acme/x", json.dumps({"type": "session.revoked", "schema_version": 9}).encode(), "newer"),
        (
            b"acme/x",
            json.dumps({"type": "session.revoked", "schema_version": 3}).encode(),
            "tenant",
        ),
        (b"acme/x", b"x" * 70_000, "exceeds"),
        (b"acme/x", b"\xff\xfe", "malformed JSON"),
        (
            b"acme/x",
            b'{"type": "session.revoked", "schema_version": 1' + b"9" * 5000 + b"}",
            "JSON",
        ),
    ],
)
def test_broken_records_are_counted_logged_and_skipped(
    record_key_: bytes | None, value: bytes, why: str, caplog: pytest.LogCaptureFixture
) -> None:
    w = watcher()
    w.apply(record_key_, value)
    assert w.records_rejected == 1
    assert len(w.table) == 0
    assert why in caplog.text


def test_a_revocation_of_a_newer_contract_is_counted_apart_and_said_as_an_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A registry upgraded before the gateway writes revocations the gateway cannot read: each
    session stays admitted here. Counted with the hostile records (`rejected`), which no
    alert reads, it went unseen (a review, stop 72); it is named in `unread` (the gauge
    GatewayRevocationsUnread reads) until a readable record or a tombstone replaces it."""
    newer = json.loads(record())
    newer["schema_version"] = 4
    w = watcher()
    with caplog.at_level(logging.ERROR, logger="auth_gateway.watcher"):
        w.apply(key(), json.dumps(newer).encode())
    assert len(w.table) == 0 and w.records_applied == 0
    assert (w.records_newer, w.records_rejected, w.unread) == (1, 0, {key()})
    assert "newer contract" in caplog.text and "upgrade this gateway" in caplog.text
    w.apply(key(), record())  # the registry rolled back: its guard writes it again, readable
    assert key() in w.table and w.unread == set()
    w.apply(key(), json.dumps(newer).encode())
    w.apply(key(), None)  # a tombstone
    assert w.unread == set()


def test_a_newer_revocation_of_another_tenant_is_skipped_unsaid_and_a_past_one_not_held() -> None:
    """As a readable one: a gateway of acme alone warned of every other tenant's revocation
    during a registry-first upgrade (a review of the fix). One already past its valid_until is
    no session admitted wrongly: counted, not named."""
    other = {
        **json.loads(record(tenant="globex")),
        "schema_version": 4,
    }
    past = {**json.loads(record(valid_for=-60)), "schema_version": 4}
    w = watcher()
    w.apply(key(tenant="globex"), json.dumps(other).encode())
    assert (w.records_newer, w.records_rejected, w.unread) == (0, 0, set())
    w.apply(key(), json.dumps(past).encode())
    assert (w.records_newer, w.records_rejected, w.unread) == (1, 0, set())
    # within the grace a readable one is still held, and so is this one named; and a time the
    # contract does not read (a bare date, a naive time) is taken as ahead, not as past
    # (fromisoformat took both: a review, stop 72)
    graced = watcher(grace=120)
    graced.apply(key(), json.dumps(past).encode())
    assert graced.unread == {key()}
    for unread_time in ("2000-01-01", "2000-01-01T00:00:00"):
        w = watcher()
        w.apply(key(), json.dumps({**past, "valid_until": unread_time}).encode())
        assert w.unread == {key()}, unread_time


@pytest.mark.parametrize(
    ("record_key_", "payload"),
    [
        # a key that is not the session's own
        (b"k" * 300, {}),
        # a key of no contract shape, which no tombstone could clear (a review of the fix)
        (b"acme/x", {"session_id": "x"}),
        (b"acme/" + b"x" * 60_000, {"session_id": "x" * 60_000}),
        # not a revocation
        (key(), {"type": "session.created"}),
        # no next contract: a version far ahead
        (key(), {"schema_version": 99}),
        (key(), {"schema_version": 10**25}),
    ],
)
def test_a_record_of_a_newer_version_that_is_no_revocation_of_ours_is_rejected(
    record_key_: bytes, payload: dict[str, Any]
) -> None:
    """Any record above version 3 was paged as a revocation unread: one record of a writer of
    the topic could page every gateway, for good (a review, stop 72)."""
    newer = {**json.loads(record()), "schema_version": 4, **payload}
    w = watcher()
    w.apply(record_key_, json.dumps(newer).encode())
    assert (w.records_newer, w.records_rejected, w.unread) == (0, 1, set())


def test_whatever_goes_wrong_inside_apply_is_counted_never_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def explode(raw: Any) -> Any:
        raise RuntimeError("a decoder surprise")

    monkeypatch.setattr("auth_gateway.watcher.decode_revocation", explode)
    w = watcher()
    w.apply(key(), record())
    assert w.records_rejected == 1


def test_the_follower_skips_a_record_whose_apply_raises(caplog: pytest.LogCaptureFixture) -> None:
    seen: list[bytes | None] = []

    class Fragile(CompactedTopicFollower):
        def apply(self, key: bytes | None, value: bytes | None) -> None:
            if value == b"bad":
                raise ValueError("cannot")
            seen.append(value)

    follower = Fragile(connection("unused:1"), "t")
    with caplog.at_level(logging.ERROR):
        for value in (b"1", b"bad", b"2"):
            follower._apply_one(b"k", value)
    assert seen == [b"1", b"2"]
    assert "could not be applied; skipped" in caplog.text


def test_a_rejected_records_log_line_holds_only_escaped_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    hostile = "x\nERROR forged\u2028line\u202eevil\x1b[2J\x85\u2066"
    payload = json.loads(record())
    payload[hostile] = 1  # a field name: the reason quotes it
    w = watcher()
    w.apply("acme/s1\n\u202e".encode(), json.dumps(payload).encode())
    assert w.records_rejected == 1
    (line,) = [r.getMessage() for r in caplog.records]
    assert "x\\nERROR forged\\u2028line\\u202eevil\\u001b[2J\\u0085\\u2066" in line
    assert not any(c in line for c in "\n\r\x1b\x85\u2028\u202e\u2066"), line


def test_staleness_counts_from_start_until_the_broker_first_answers() -> None:
    clock = [1000.0]
    w = RevocationWatcher(
        connection("unused:1"), "t", ["acme"], RevocationTable(), monotonic=lambda: clock[0]
    )
    clock[0] += 7
    assert w.staleness_seconds() == 7
    assert not w.ready
