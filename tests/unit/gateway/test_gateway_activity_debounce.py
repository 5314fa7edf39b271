"""Activity debouncing and its bounds, with an injected clock (sending is tested on Kafka)."""

from __future__ import annotations

import pytest

from auth_gateway.activity import ActivityReporter
from session_contracts.handles import record_key, session_handle

A, B, C, D = (record_key("acme", session_handle("acme", n)) for n in "abcd")


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def reporter(clock: Clock, **options: int) -> ActivityReporter:
    def no_producer() -> None:
        raise AssertionError("nothing is sent in these tests")

    return ActivityReporter(
        no_producer,
        "events",
        interval_seconds=60,
        clock=clock,
        **options,
    )


def test_one_event_per_session_per_interval() -> None:
    clock = Clock()
    activity = reporter(clock)
    activity.note(A, "10.0.0.1")
    clock.now += 59.9
    activity.note(A, "10.0.0.2")
    activity.note(B, None)
    clock.now += 0.2
    activity.note(A, "10.0.0.3")
    assert [(s, ip) for s, ip, _ in activity._pending] == [
        (A, "10.0.0.1"),
        (B, None),
        (A, "10.0.0.3"),
    ]


def test_the_same_handle_in_two_tenants_is_debounced_apart() -> None:
    clock = Clock()
    activity = reporter(clock)
    handle = session_handle("acme", "a")
    activity.note(record_key("acme", handle), None)
    activity.note(record_key("globex", handle), None)
    assert activity.pending == 2


def test_debounce_map_is_bounded_by_dropping_the_least_recent() -> None:
    clock = Clock()
    activity = reporter(clock, max_tracked=3)
    for key in (A, B, C, D):
        activity.note(key, None)
    assert activity.tracked == 3
    activity.note(A, None)  # forgotten, so it reports again: more events, never fewer
    assert len(activity._pending) == 5


def test_idle_entries_are_forgotten() -> None:
    clock = Clock()
    activity = reporter(clock)
    activity.note(A, None)
    clock.now += 30
    activity.note(B, None)
    clock.now += 31
    activity.forget_idle()
    assert activity.tracked == 1


def test_pending_events_are_bounded_and_drops_are_counted() -> None:
    clock = Clock()
    activity = reporter(clock, max_pending=2)
    for key in (A, B, C):
        activity.note(key, None)
    assert activity.pending == 2
    assert activity.dropped == 1
    assert [s for s, _, _ in activity._pending] == [B, C]


@pytest.mark.parametrize("tenant", ["acme", "globex"])
def test_events_carry_the_keys_tenant_and_handle_time_and_only_valid_addresses(
    tenant: str,
) -> None:
    clock = Clock()
    activity = reporter(clock)
    handle = session_handle(tenant, "sess-1")
    key = record_key(tenant, handle)
    keyed, event = activity._keyed_event((key, "::ffff:10.1.2.3", 1_700_000_000.5))
    assert keyed == key  # the Kafka key: tenant-qualified, never the credential
    assert event is not None
    assert event.tenant_id == tenant
    assert event.session_id == handle
    assert event.occurred_at.timestamp() == 1_700_000_000.5
    assert event.ip_address == "::ffff:10.1.2.3"
    unix_socket = activity._event((key, "/run/app.sock", 1.0))
    assert unix_socket is not None and unix_socket.ip_address is None
    # a link-local peer as the socket names it: the event carries the address, not the zone
    link_local = activity._event((key, "fe80::1%eth0", 1.0))
    assert link_local is not None and link_local.ip_address == "fe80::1"
    assert activity._event((b"no-tenant-in-this-key", None, 1.0)) is None
