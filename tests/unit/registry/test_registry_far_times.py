"""Timestamps at the ends of the contract's range fold without overflowing."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from session_contracts.handles import session_handle
from session_contracts.models import SessionCreated, SessionPolicy, SessionType
from session_registry.domain.fold import fold
from session_registry.domain.lifecycle import valid_until
from session_registry.domain.state import END_OF_TIME

S1 = session_handle("acme", "s1")


def _created(at: datetime) -> SessionCreated:
    return SessionCreated(
        event_id=uuid.uuid4(),
        occurred_at=at,
        tenant_id="acme",
        session_id=S1,
        user_id="u1",
        user_name="User",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        policy=SessionPolicy(max_session_seconds=86400, idle_timeout_seconds=3600),
    )


def test_a_session_created_at_the_end_of_time_expires_at_the_end_of_time() -> None:
    state = fold([_created(datetime(9999, 12, 31, 23, 0, tzinfo=UTC))])
    assert state is not None
    assert state.expires_at == END_OF_TIME
    assert valid_until(state) == END_OF_TIME


def test_a_session_created_in_year_one_expires_an_idle_timeout_later() -> None:
    state = fold([_created(datetime(1, 1, 1, tzinfo=UTC))])
    assert state is not None
    assert state.expires_at == datetime(1, 1, 1, 1, 0, tzinfo=UTC)
