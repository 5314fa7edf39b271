"""The events and records the registry itself writes: terminations, expiries, revocations.

Their ids are derived, not random, so a re-run after a crash writes the same records again
(idempotent on the event log and on the compacted revocations topic).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import datetime

from read_model.active import EXPIRED, TERMINATED
from session_contracts.models import (
    ExpiryReason,
    SessionExpired,
    SessionRevoked,
    SessionTerminated,
    SessionType,
    TerminateSessions,
    TerminationReason,
    as_utc,
)
from session_registry.domain.state import SessionState, expiry_reason, later

EXPIRY_NAMESPACE = uuid.UUID("8a0f8f8e-4b0e-5a57-9b6e-5e55107e0e01")


def termination_event(command: TerminateSessions, state: SessionState) -> SessionTerminated:
    """The `session.terminated` a command makes for one session: id uuid5(command_id, session)."""
    return SessionTerminated(
        event_id=uuid.uuid5(command.command_id, state.session_id),
        occurred_at=command.requested_at,
        tenant_id=state.tenant_id,
        session_id=state.session_id,
        reason=command.reason,
        terminated_by=command.requested_by,
        command_id=command.command_id,
    )


def termination_events(command: TerminateSessions) -> Callable[[SessionState], SessionTerminated]:
    """`termination_event` for many sessions of one command, cheaper: the first is validated,
    the others are copies of it with their own session id and event id (the only fields that
    differ; both valid as they are: a stored session's id, a uuid5). Same records, same bytes.
    """
    first: list[SessionTerminated] = []

    def event(state: SessionState) -> SessionTerminated:
        if not first:
            first.append(termination_event(command, state))
            return first[0]
        update = {
            "event_id": uuid.uuid5(command.command_id, state.session_id),
            "session_id": state.session_id,
        }
        return first[0].model_copy(update=update)

    return event


def expiry_event(state: SessionState) -> SessionExpired:
    """The `session.expired` for a session past `expires_at`; one id per session, ever."""
    assert state.expires_at is not None
    return SessionExpired(
        event_id=uuid.uuid5(EXPIRY_NAMESPACE, f"{state.tenant_id}\x1f{state.session_id}"),
        occurred_at=state.expires_at,
        tenant_id=state.tenant_id,
        session_id=state.session_id,
        reason=expiry_reason(state),
    )


def valid_until(state: SessionState) -> datetime | None:
    """The latest moment a session could still be valid: created_at + max_session_seconds.

    Not `expires_at`: that bound moves with activity, and activity may still be on its way
    (gateways debounce it, producers lag), so the idle limit is not yet known for sure. The
    maximum length is fixed at creation, so a tombstone after it can never re-admit a session.
    """
    if state.created_at is None or state.max_session_seconds is None:
        return None
    return later(state.created_at, state.max_session_seconds)


def needs_revocation(before: SessionState | None, after: SessionState, now: datetime) -> bool:
    """Whether gateways must learn of this session's end: it is new, or it now lasts longer,
    and the session could be valid.

    "New" means the state just became terminated-and-known (a termination seen before the
    creation is revoked once the creation arrives, since only then is the session's type
    known), or expired-and-served (`served_after_expiry`). "Lasts longer": a creation the
    broker appended earlier replaced the one the session was ended under
    (`fold.apply_created`), and its policy holds the session valid later. A forged creation
    read first, dated back with a policy of a second, would otherwise leave an admin's
    termination unpublished for good: ended under it, nothing was valid to revoke, and the
    real creation came to a session already terminated (a review, 2026-12-06). Gateways and
    the registry's revocations keep the latest `valid_until` of a session's records.
    """
    if not _revocable(after):
        return False
    until = valid_until(after)
    if until is None or until <= now:
        return False
    if before is not None and _revocable(before):
        earlier = valid_until(before)
        return earlier is not None and until > earlier
    return True


def _revocable(state: SessionState) -> bool:
    """A created session gateways must refuse: terminated, or expired and served after."""
    if not state.created:
        return False
    return state.state == TERMINATED or (state.state == EXPIRED and served_after_expiry(state))


def served_after_expiry(state: SessionState) -> bool:
    """Whether activity dated after the session's expiry was reported: its platform served
    it after the registry had expired it. An expiry is final, and an expired session is not
    listed and ended by no termination, so such a session, alive on its platform, was beyond
    every admin's reach until its maximum length: reported activity less often than the
    registry's grace (`SESSIONS_GATEWAY_ACTIVITY_INTERVAL_SECONDS` above
    `SESSIONS_ACTIVITY_GRACE_SECONDS`), activity a gateway dropped or held, or a
    `session.expired` a producer forged before its deadline (a review, stop 70). Such a
    session is revoked, as expired: what the registry holds is what gateways enforce."""
    return (
        state.state == EXPIRED
        and state.ended_at is not None
        and state.last_activity_at is not None
        and state.last_activity_at > state.ended_at
    )


def revocations() -> Callable[[SessionState], SessionRevoked]:
    """`revocation` for many terminated sessions, cheaper: one record is validated per tenant,
    type, end and reason, the others are copies of it with their own session id and
    `valid_until` (a stored session's id; a time computed from stored, validated ones, in
    UTC as validation would leave it). Same records, same bytes."""
    made: dict[tuple[str, str | None, datetime | None, str | None], SessionRevoked] = {}

    def record(state: SessionState) -> SessionRevoked:
        shared = (state.tenant_id, state.session_type, state.ended_at, state.end_reason)
        template = made.get(shared)
        if template is None:
            made[shared] = template = revocation(state)
            return template
        until = valid_until(state)
        assert until is not None
        update = {"session_id": state.session_id, "valid_until": as_utc(until)}
        return template.model_copy(update=update)

    return record


def revocation(state: SessionState) -> SessionRevoked:
    """The revocation record of a terminated session, or of an expired one its platform served
    after (`served_after_expiry`; its reason the expiry's, which a gateway tells the user as
    expired). Deterministic: same state, same record."""
    until = valid_until(state)
    assert state.ended_at is not None and until is not None
    assert state.session_type is not None and state.end_reason is not None
    reason: TerminationReason | ExpiryReason = (
        ExpiryReason(state.end_reason)
        if state.state == EXPIRED
        else TerminationReason(state.end_reason)
    )
    return SessionRevoked(
        tenant_id=state.tenant_id,
        session_id=state.session_id,
        session_type=SessionType(state.session_type),
        revoked_at=state.ended_at,
        reason=reason,
        valid_until=until,
    )
