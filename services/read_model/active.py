"""What an active session is: the one definition, as a predicate and as SQL, side by side.

A session is *active* at `now` while it is open (neither terminated nor expired), has been
created (activity may arrive before `session.created`) and `expires_at` lies after `now`. An
open session past `expires_at` is no longer active, only not yet swept: the registry's sweeper
ends it. Only *listed* session types (browser, mobile) appear in the admin list and its counts.

`is_active` answers for one session in Python; `active_condition` is the same test as a
clause on `sessions`, built from the same constants. A test holds the two to each other on
both backends, and the PostgreSQL partial listing indexes (revision 0101) to
`listed_open_condition`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Protocol, TypeAlias

from sqlalchemy import BindParameter, ColumnElement, and_, literal_column

from read_model.tables import sessions
from session_contracts.models import LISTED_SESSION_TYPES

OPEN = "open"
TERMINATED = "terminated"
EXPIRED = "expired"
"""The values of `sessions.state`: open until a termination or an expiry, which is final."""

LISTED = tuple(sorted(kind.value for kind in LISTED_SESSION_TYPES))
"""The session types the admin list shows and counts."""


class Lifecycle(Protocol):
    """What `is_active` reads of a session (a `SessionState`, a row with aware times)."""

    @property
    def state(self) -> str: ...

    @property
    def created_at(self) -> datetime | None: ...

    @property
    def expires_at(self) -> datetime | None: ...


def is_active(session: Lifecycle, now: datetime) -> bool:
    """Created, neither terminated nor expired, and not yet past `expires_at` at `now`."""
    return (
        session.state == OPEN
        and session.created_at is not None
        and session.expires_at is not None
        and session.expires_at > now
    )


def is_listed(session_type: str | None) -> bool:
    """Whether sessions of this type appear in the admin list."""
    return session_type in LISTED


Moment: TypeAlias = datetime | BindParameter[datetime]
"""A moment in a clause: a value, or a parameter bound at execution (a statement built once)."""
TenantRef: TypeAlias = str | BindParameter[str]
"""A tenant id in a clause: a value, or a parameter bound at execution."""

_s = sessions.c
# Inlined, not bound: the partial listing indexes (WHERE state = 'open' ...) must match any plan.
_OPEN: ColumnElement[str] = literal_column(f"'{OPEN}'")
_LISTED: list[ColumnElement[str]] = [literal_column(f"'{kind}'") for kind in LISTED]
_ENDED: list[ColumnElement[str]] = [literal_column(f"'{state}'") for state in (EXPIRED, TERMINATED)]


def open_condition() -> ColumnElement[bool]:
    """Open and created: active, or past `expires_at` and not yet swept."""
    return and_(_s.state == _OPEN, _s.created_at.is_not(None))


def active_condition(now: Moment) -> ColumnElement[bool]:
    """`is_active` as a clause on `sessions`."""
    return and_(open_condition(), _s.expires_at > now)


def unswept_condition(now: Moment) -> ColumnElement[bool]:
    """Open, but past `expires_at` at `now`: what the sweeper expires next."""
    return and_(open_condition(), _s.expires_at <= now)


def listed_condition() -> ColumnElement[bool]:
    """`is_listed` as a clause on `sessions`."""
    return _s.session_type.in_(_LISTED)


def listed_open_condition() -> ColumnElement[bool]:
    """The sessions the PostgreSQL listing indexes and `listed_session_counts` hold."""
    return and_(open_condition(), listed_condition())


def never_created_condition(now: datetime) -> ColumnElement[bool]:
    """Never created, in any state, and past its `expires_at`: what the sweeper deletes.

    Such a row (seen only through activity, a termination or an expiry) was never active, never
    listed and never revoked; its `expires_at` is the latest of its activity and its end plus
    the registry's `activity_only_seconds`. No state condition: with one, the `(state,
    expires_at)` index would read every ended session; the partial index
    `ix_sessions_never_created` (revision 0201, `WHERE created_at IS NULL`) holds these rows
    alone.
    """
    return and_(_s.created_at.is_(None), _s.expires_at <= now)


def past_retention_condition(before: Moment) -> ColumnElement[bool]:
    """Ended, and both its end and its `expires_at` before `before`: what the sweeper deletes
    once the retention of ended sessions has passed (`before` = now - retention).

    `expires_at` is the session's own bound (its policy over its creation and its activity,
    kept when it ends), so a duplicate of its `session.created` or of any of its activity
    folded after the deletion makes a row that expires no later: never active again. The
    `(state, expires_at)` index finds these rows; `ended_at` is checked on them (an end
    later than `expires_at` comes from a termination folded after the session idled out).
    """
    return and_(_s.state.in_(_ENDED), _s.expires_at < before, _s.ended_at < before)
