"""The pure fold: one function per event type, converging whatever the order."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from read_model.active import is_active
from session_contracts.handles import session_handle
from session_contracts.models import (
    ExpiryReason,
    SessionActivity,
    SessionCreated,
    SessionEvent,
    SessionExpired,
    SessionPolicy,
    SessionTerminated,
    SessionType,
    TerminationReason,
)
from session_registry.domain.devices import device_label
from session_registry.domain.fold import apply, fold
from session_registry.domain.lifecycle import expiry_event, needs_revocation, valid_until
from session_registry.domain.state import ACTIVITY_ONLY_SECONDS, SessionState, expiry_reason

T0 = datetime(2030, 1, 1, tzinfo=UTC)
CHROME_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 Chrome/124.0"


S1 = session_handle("acme", "s1")


def created(at: datetime = T0, *, user: str = "u1", device: str | None = None) -> SessionCreated:
    return SessionCreated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id="acme",
        session_id=S1,
        user_id=user,
        user_name="Ada",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        user_agent=CHROME_MAC,
        device=device,
        policy=SessionPolicy(max_session_seconds=7200, idle_timeout_seconds=600),
    )


def activity(at: datetime, ip: str | None = None) -> SessionActivity:
    return SessionActivity(
        event_id=uuid.uuid4(), occurred_at=at, tenant_id="acme", session_id=S1, ip_address=ip
    )


def terminated(at: datetime, by: str = "admin-1") -> SessionTerminated:
    return SessionTerminated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id="acme",
        session_id=S1,
        reason=TerminationReason.admin,
        terminated_by=by,
    )


def expired(at: datetime) -> SessionExpired:
    return SessionExpired(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id="acme",
        session_id=S1,
        reason=ExpiryReason.idle,
    )


def new_state() -> SessionState:
    return SessionState(tenant_id="acme", session_id=S1)


def test_created_sets_the_fields_and_expiry() -> None:
    state = apply(new_state(), created())
    assert state.user_id == "u1"
    assert state.device == "Chrome on macOS"
    assert state.ip_packed == b"\x00" * 10 + b"\xff\xff" + bytes([10, 0, 0, 1])
    assert state.last_activity_at == T0
    # idle (600 s) comes before the maximum length (7200 s)
    assert state.expires_at == T0 + timedelta(seconds=600)


def test_a_given_device_label_wins_over_the_user_agent() -> None:
    assert apply(new_state(), created(device="Kiosk 7")).device == "Kiosk 7"


def test_activity_extends_expiry_up_to_the_maximum_length() -> None:
    state = apply(new_state(), created())
    apply(state, activity(T0 + timedelta(seconds=3000)))
    assert state.expires_at == T0 + timedelta(seconds=3600)
    apply(state, activity(T0 + timedelta(seconds=7000)))
    assert state.expires_at == T0 + timedelta(seconds=7200)
    assert expiry_reason(state) == ExpiryReason.max_length


def test_older_activity_changes_nothing() -> None:
    state = apply(new_state(), created())
    apply(state, activity(T0 + timedelta(seconds=100), ip="10.0.0.2"))
    before = state.copy()
    apply(state, activity(T0 + timedelta(seconds=50), ip="10.0.0.3"))
    assert state == before
    assert state.current_ip == "10.0.0.2"


def test_activity_before_creation_is_kept() -> None:
    state = apply(new_state(), activity(T0 + timedelta(seconds=300)))
    # never created: kept ACTIVITY_ONLY_SECONDS after its latest activity, never active
    assert state.created_at is None
    assert state.expires_at == T0 + timedelta(seconds=300 + ACTIVITY_ONLY_SECONDS)
    assert not is_active(state, T0 + timedelta(seconds=301))
    apply(state, created())
    assert state.last_activity_at == T0 + timedelta(seconds=300)
    assert state.expires_at == T0 + timedelta(seconds=900)


def test_creation_fields_are_set_once_by_the_earliest_creation() -> None:
    first, second = created(T0, user="u1"), created(T0 + timedelta(seconds=1), user="u2")
    a = fold([first, second])
    b = fold([second, first])
    assert a == b
    assert a is not None and a.user_id == "u1"


def test_termination_is_final_and_the_earliest_end_wins() -> None:
    events: list[SessionEvent] = [
        created(),
        expired(T0 + timedelta(seconds=600)),
        terminated(T0 + timedelta(seconds=300)),
        activity(T0 + timedelta(seconds=400)),
    ]
    forward, backward = fold(events), fold(list(reversed(events)))
    assert forward == backward
    assert forward is not None
    assert forward.state == "terminated" and forward.ended_at == T0 + timedelta(seconds=300)


def test_a_tie_between_termination_and_expiry_goes_to_termination() -> None:
    at = T0 + timedelta(seconds=600)
    forward = fold([created(), expired(at), terminated(at)])
    backward = fold([created(), terminated(at), expired(at)])
    assert forward == backward
    assert forward is not None and forward.state == "terminated"


def test_is_active_follows_the_injected_clock() -> None:
    state = apply(new_state(), created())
    assert is_active(state, T0 + timedelta(seconds=599))
    assert not is_active(state, T0 + timedelta(seconds=600))
    apply(state, terminated(T0 + timedelta(seconds=10)))
    assert not is_active(state, T0 + timedelta(seconds=20))


def test_expiry_event_is_deterministic_per_session() -> None:
    state = apply(new_state(), created())
    first, second = expiry_event(state), expiry_event(state.copy())
    assert first.event_id == second.event_id
    assert first.occurred_at == state.expires_at
    assert first.reason == ExpiryReason.idle


def test_revocation_only_for_a_new_termination_of_a_known_session() -> None:
    open_state = apply(new_state(), created())
    ended = apply(open_state.copy(), terminated(T0 + timedelta(seconds=5)))
    assert valid_until(ended) == T0 + timedelta(seconds=7200)
    assert needs_revocation(open_state, ended, T0 + timedelta(seconds=10))
    assert not needs_revocation(ended, ended, T0 + timedelta(seconds=10))  # already revoked
    assert not needs_revocation(open_state, ended, T0 + timedelta(seconds=7200))  # past valid
    unknown = apply(new_state(), terminated(T0))
    assert not needs_revocation(None, unknown, T0)  # no type known yet: revoked on creation
    assert needs_revocation(unknown.copy(), apply(unknown, created()), T0 + timedelta(seconds=1))


def test_device_labels() -> None:
    iphone = (
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.0 Mobile/15E148 Safari/604.1"
    )
    assert device_label(iphone) == "iPhone"
    assert device_label(CHROME_MAC) == "Chrome on macOS"
    assert device_label(None) is None
    assert device_label("") is None


def test_the_creation_appended_first_wins_in_every_order() -> None:
    """Of several creations, the one the broker appended first wins whatever its date or the
    order the fold meets them in; an unknown append time (a row folded before revision 1401, a
    topic dated by its producers) counts as the earliest; without append times the earliest
    dated wins, as before."""
    import itertools

    genuine = (created(T0, user="real"), T0 + timedelta(seconds=1))
    forged_earlier = (created(T0 - timedelta(seconds=1), user="forged"), T0 + timedelta(minutes=1))
    forged_later = (created(T0 + timedelta(hours=1), user="late"), T0 + timedelta(hours=2))
    candidates = [genuine, forged_earlier, forged_later]
    for order in itertools.permutations(candidates):
        state = SessionState(tenant_id="acme", session_id=S1)
        for event, appended in order:
            apply(state, event, appended)
        assert (state.user_id, state.created_at) == ("real", T0)
        assert state.creation_appended_at == T0 + timedelta(seconds=1)
    unknown: list[tuple[SessionCreated, datetime | None]] = [(forged_earlier[0], None), genuine]
    for pairs in itertools.permutations(unknown):
        state = SessionState(tenant_id="acme", session_id=S1)
        for event, at in pairs:
            apply(state, event, at)
        assert (state.user_id, state.creation_appended_at) == ("forged", None)
    undated = fold([genuine[0], forged_earlier[0]])
    assert undated is not None and undated.user_id == "forged"
