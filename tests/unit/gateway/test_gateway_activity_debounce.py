"""Activity debouncing and its bounds, with an injected clock (sending is tested on Kafka)."""

from __future__ import annotations

from auth_gateway.activity import ActivityReporter


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
        "acme",
        interval_seconds=60,
        clock=clock,
        **options,
    )


def test_one_event_per_session_per_interval() -> None:
    clock = Clock()
    activity = reporter(clock)
    activity.note("a", "10.0.0.1")
    clock.now += 59.9
    activity.note("a", "10.0.0.2")
    activity.note("b", None)
    clock.now += 0.2
    activity.note("a", "10.0.0.3")
    assert [(s, ip) for s, ip, _ in activity._pending] == [
        ("a", "10.0.0.1"),
        ("b", None),
        ("a", "10.0.0.3"),
    ]


def test_debounce_map_is_bounded_by_dropping_the_least_recent() -> None:
    clock = Clock()
    activity = reporter(clock, max_tracked=3)
    for name in ("a", "b", "c", "d"):
        activity.note(name, None)
    assert activity.tracked == 3
    activity.note("a", None)  # forgotten, so it reports again: more events, never fewer
    assert len(activity._pending) == 5


def test_idle_entries_are_forgotten() -> None:
    clock = Clock()
    activity = reporter(clock)
    activity.note("a", None)
    clock.now += 30
    activity.note("b", None)
    clock.now += 31
    activity.forget_idle()
    assert activity.tracked == 1


def test_pending_events_are_bounded_and_drops_are_counted() -> None:
    clock = Clock()
    activity = reporter(clock, max_pending=2)
    for name in ("a", "b", "c"):
        activity.note(name, None)
    assert activity.pending == 2
    assert activity.dropped == 1
    assert [s for s, _, _ in activity._pending] == ["b", "c"]


def test_events_carry_tenant_time_and_only_valid_addresses() -> None:
    clock = Clock()
    activity = reporter(clock)
    event = activity._event(("sess-1", "::ffff:10.1.2.3", 1_700_000_000.5))
    assert event is not None
    assert event.tenant_id == "acme"
    assert event.session_id == "sess-1"
    assert event.occurred_at.timestamp() == 1_700_000_000.5
    assert event.ip_address == "::ffff:10.1.2.3"
    unix_socket = activity._event(("sess-1", "/run/app.sock", 1.0))
    assert unix_socket is not None and unix_socket.ip_address is None
    # a link-local peer as the socket names it: the event carries the address, not the zone
    link_local = activity._event(("sess-1", "fe80::1%eth0", 1.0))
    assert link_local is not None and link_local.ip_address == "fe80::1"
