"""A session's state in the read model, and what it implies: when and why it expires.

Whether it is active is `read_model.active.is_active`, the definition the queries share.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from read_model.active import EXPIRED, OPEN, TERMINATED
from session_contracts.models import ExpiryReason

# When a termination and an expiry (or two terminations) carry the same time, this decides.
END_RANK = {TERMINATED: 0, EXPIRED: 1}


@dataclass(slots=True)
class SessionState:
    """One row of `sessions`: the fold of every event seen for the session, in any order."""

    tenant_id: str
    session_id: str
    user_id: str | None = None
    user_name: str | None = None
    session_type: str | None = None
    ip_address: str | None = None
    ip_packed: bytes | None = None
    user_agent: str | None = None
    device: str | None = None
    max_session_seconds: int | None = None
    idle_timeout_seconds: int | None = None
    created_at: datetime | None = None
    last_activity_at: datetime | None = None
    current_ip: str | None = None
    current_ip_at: datetime | None = None
    expires_at: datetime | None = None
    state: str = OPEN
    ended_at: datetime | None = None
    end_reason: str | None = None
    ended_by: str | None = None
    creation_appended_at: datetime | None = None
    """When the broker appended the `session.created` the fields come from (LogAppendTime):
    of two creations, the one appended first wins (`fold.apply_created`). None when no such
    time is known: the row predates revision 1401, or the topic is dated by its producers."""

    @property
    def key(self) -> tuple[str, str]:
        """(tenant_id, session_id)."""
        return (self.tenant_id, self.session_id)

    @property
    def created(self) -> bool:
        """Whether a `session.created` has been seen."""
        return self.created_at is not None

    def as_row(self) -> dict[str, Any]:
        """The state as a `sessions` row."""
        return {name: getattr(self, name) for name in COLUMNS}

    def copy(self) -> SessionState:
        """An independent copy (the fold merges into the state it is given)."""
        return SessionState(**self.as_row())


COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SessionState))

END_OF_TIME = datetime.max.replace(tzinfo=UTC)

ACTIVITY_ONLY_SECONDS = 3600
"""How long a session never created (seen only through activity, a termination or an expiry,
never `session.created`) is kept after the latest of them before the sweeper deletes it: the
registry setting `activity_only_seconds` (`SESSIONS_ACTIVITY_ONLY_SECONDS`), default one hour.
Events ahead of their creation are a matter of seconds (gateways debounce, producers lag, a v1
and a v2 record of one session sit on different partitions during an upgrade); an hour covers a
registry that lagged that long, and bounds what records of made-up sessions can store to one
hour of them."""
AHEAD_OF_STORE = timedelta(minutes=5)
"""How far after the registry's clock an activity or end of a session never created may push
its deletion: producers' clocks differ by seconds, not by years (`compute_expires_at`)."""


def later(at: datetime, seconds: int) -> datetime:
    """`at` plus `seconds`, saturating at the last representable moment.

    The contract accepts any RFC 3339 time, up to 9999-12-31; a session created then must be
    folded like any other, not crash the consumer on an overflow.
    """
    try:
        return at + timedelta(seconds=seconds)
    except OverflowError:
        return END_OF_TIME


def compute_expires_at(
    state: SessionState,
    activity_only_seconds: int = ACTIVITY_ONLY_SECONDS,
    stored_at: datetime | None = None,
) -> datetime | None:
    """min(created_at + max_session_seconds, last_activity_at + idle_timeout_seconds).

    A session never created (seen only through activity, a termination or an expiry) has no
    policy: it is due `activity_only_seconds` after the latest of its activity, its end and
    `stored_at` (when the registry stores this state, by its clock), and the sweeper deletes it
    then (it was never active nor listed, and never revoked). `stored_at` is what gives a
    creation read later than its other events (a registry catching up on old records, which
    the sweeper would otherwise delete on arrival) the whole bound to come in. An activity or
    end dated more than `AHEAD_OF_STORE` after `stored_at` counts as that far ahead: records
    dated years ahead (anyone may produce them) would otherwise keep their row for years.
    """
    if state.created_at is None:
        seen = [at for at in (state.last_activity_at, state.ended_at) if at is not None]
        if stored_at is not None:
            seen = [min(at, stored_at + AHEAD_OF_STORE) for at in seen] + [stored_at]
        return later(max(seen), activity_only_seconds) if seen else None
    if (
        state.last_activity_at is None
        or state.max_session_seconds is None
        or state.idle_timeout_seconds is None
    ):
        return None
    return min(
        later(state.created_at, state.max_session_seconds),
        later(state.last_activity_at, state.idle_timeout_seconds),
    )


def expiry_reason(state: SessionState) -> ExpiryReason:
    """Which limit ends the session: idle when the idle timeout comes strictly first."""
    assert state.created_at is not None and state.last_activity_at is not None
    assert state.max_session_seconds is not None and state.idle_timeout_seconds is not None
    idle_end = later(state.last_activity_at, state.idle_timeout_seconds)
    max_end = later(state.created_at, state.max_session_seconds)
    return ExpiryReason.idle if idle_end < max_end else ExpiryReason.max_length
