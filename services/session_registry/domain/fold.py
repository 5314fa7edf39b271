"""The fold: one function per event type merging an event into a session's state.

Every merge is commutative and idempotent, so duplicates and any order of a session's events
converge to the same state:
- creation fields are set once: of several `session.created` (distinct ids), the one the broker
  appended first wins (`creation_appended_at`; an unknown append time counts as earliest),
  then the one with the smallest (occurred_at, fields...), whatever order they come in;
- `last_activity_at` is the maximum time seen (creation included); `current_ip` is the address
  of the latest event carrying one (ties: the larger address string);
- termination and expiry are final: of all seen, the earliest `occurred_at` wins, ties broken by
  type (terminated before expired), then reason, then `terminated_by`;
- activity, a termination or an expiry of a session not created yet is kept, with an
  `expires_at` of the latest of them (and, in the registry, of when it stored them) plus
  `activity_only_seconds` (the sweeper deletes the row then); creation replaces it by the
  policy's.

The per-type functions merge facts only; `refresh` derives `expires_at` from them, so a batch
pays for it once per session rather than once per event (`apply` does both).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Any

from read_model.active import EXPIRED, TERMINATED
from session_contracts.addresses import pack_ip
from session_contracts.models import (
    SessionActivity,
    SessionCreated,
    SessionEvent,
    SessionExpired,
    SessionTerminated,
)
from session_registry.domain.devices import device_label
from session_registry.domain.state import (
    ACTIVITY_ONLY_SECONDS,
    END_RANK,
    SessionState,
    compute_expires_at,
)

_UNKNOWN_APPEND = datetime.min.replace(tzinfo=UTC)


def _creation_fields(state: SessionState) -> tuple[Any, ...]:
    return (
        state.created_at,
        state.user_id,
        state.user_name,
        state.session_type,
        state.ip_address,
        state.user_agent or "",
        state.device or "",
        state.max_session_seconds,
        state.idle_timeout_seconds,
    )


def _creation_key(state: SessionState) -> tuple[Any, ...]:
    """What decides between two creations of a session: the one the broker appended first,
    then the one dated earliest (field by field after that). A forged creation of a live
    session is appended after the real one (its id is not known before the sign-in), so it
    loses whatever date and policy it carries; an unknown append time (a row from before
    revision 1401, or a topic dated by its producers) counts as the earliest."""
    return (state.creation_appended_at or _UNKNOWN_APPEND, *_creation_fields(state))


def _seen_activity(state: SessionState, at: datetime, ip: str | None) -> None:
    if ip is not None and (
        state.current_ip_at is None or (at, ip) > (state.current_ip_at, state.current_ip or "")
    ):
        state.current_ip, state.current_ip_at = ip, at
    if state.last_activity_at is None or at > state.last_activity_at:
        state.last_activity_at = at


def _candidate(
    state: SessionState, event: SessionCreated, appended: datetime | None
) -> SessionState:
    return SessionState(
        tenant_id=state.tenant_id,
        session_id=state.session_id,
        user_id=event.user_id,
        user_name=event.user_name,
        session_type=event.session_type.value,
        ip_address=event.ip_address,
        user_agent=event.user_agent,
        device=event.device or device_label(event.user_agent),
        max_session_seconds=event.policy.max_session_seconds,
        idle_timeout_seconds=event.policy.idle_timeout_seconds,
        created_at=event.occurred_at,
        creation_appended_at=appended,
    )


def apply_created(
    state: SessionState, event: SessionCreated, appended: datetime | None = None
) -> SessionState:
    """Set the creation fields (the creation appended first wins, `_creation_key`) and count
    creation as activity. `appended`: when the broker appended the record (LogAppendTime),
    None when unknown."""
    merge_created(state, event, appended)
    return state


def merge_created(
    state: SessionState, event: SessionCreated, appended: datetime | None = None
) -> bool:
    """`apply_created`; return whether `event` contests the session's creation: a creation of
    a session already created otherwise (another time, policy or any other creation field).
    A login service writes one creation a session, and sends it again only as it was: such a
    record comes from someone else. Where the broker dates the records it loses to the
    creation appended first, but on a topic dated by its producers the earliest wins, and one
    dated earlier with a short policy brings the deadline forward, so the registry expires the
    session itself while the platform serves it (a review, 2026-12-06)."""
    candidate = _candidate(state, event, appended)
    created = state.created_at is not None
    contested = created and _creation_fields(candidate) != _creation_fields(state)
    if not created or _creation_key(candidate) < _creation_key(state):
        state.user_id = candidate.user_id
        state.user_name = candidate.user_name
        state.session_type = candidate.session_type
        state.ip_address = candidate.ip_address
        state.ip_packed = pack_ip(event.ip_address)
        state.user_agent = candidate.user_agent
        state.device = candidate.device
        state.max_session_seconds = candidate.max_session_seconds
        state.idle_timeout_seconds = candidate.idle_timeout_seconds
        state.created_at = candidate.created_at
        state.creation_appended_at = appended
    _seen_activity(state, event.occurred_at, event.ip_address)
    return contested


def apply_activity(state: SessionState, event: SessionActivity) -> SessionState:
    """Raise `last_activity_at` (and the current address) if this activity is the latest."""
    _seen_activity(state, event.occurred_at, event.ip_address)
    return state


def _end(state: SessionState, kind: str, at: datetime, reason: str, by: str | None) -> None:
    if state.ended_at is not None:
        current = (
            state.ended_at,
            END_RANK[state.state],
            state.end_reason or "",
            state.ended_by or "",
        )
        if current <= (at, END_RANK[kind], reason, by or ""):
            return
    state.state, state.ended_at, state.end_reason, state.ended_by = kind, at, reason, by


def apply_terminated(state: SessionState, event: SessionTerminated) -> SessionState:
    """End the session (final; the earliest end seen wins)."""
    _end(state, TERMINATED, event.occurred_at, event.reason.value, event.terminated_by)
    return state


def apply_expired(state: SessionState, event: SessionExpired) -> SessionState:
    """Expire the session (final; the earliest end seen wins)."""
    _end(state, EXPIRED, event.occurred_at, event.reason.value, None)
    return state


FOLDS: dict[str, Callable[[SessionState, Any], SessionState]] = {
    "session.created": apply_created,
    "session.activity": apply_activity,
    "session.terminated": apply_terminated,
    "session.expired": apply_expired,
}


def merge(state: SessionState, event: SessionEvent) -> SessionState:
    """Merge an event's facts into the state (in place), leaving derived fields to `refresh`.

    A batch merges many events into one state and refreshes it once.
    """
    return FOLDS[event.type](state, event)


def refresh(
    state: SessionState,
    activity_only_seconds: int = ACTIVITY_ONLY_SECONDS,
    stored_at: datetime | None = None,
) -> SessionState:
    """Recompute the derived fields (`expires_at`) from the merged facts (and, for a session
    never created, the time the registry stores it: see `compute_expires_at`)."""
    state.expires_at = compute_expires_at(state, activity_only_seconds, stored_at)
    return state


def apply(
    state: SessionState, event: SessionEvent, appended: datetime | None = None
) -> SessionState:
    """Merge any event into the state (in place), refresh it, and return it; `appended`: when
    the broker appended a `session.created` (`apply_created`), None when unknown."""
    if type(event) is SessionCreated:
        return refresh(apply_created(state, event, appended))
    return refresh(FOLDS[event.type](state, event))


def fold(events: Iterable[SessionEvent], state: SessionState | None = None) -> SessionState | None:
    """The state after all `events` (all of one session), starting from `state` or nothing."""
    for event in events:
        if state is None:
            state = SessionState(tenant_id=event.tenant_id, session_id=event.session_id)
        apply(state, event)
    return state
