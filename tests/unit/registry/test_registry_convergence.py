"""Property: any order and any duplication of a set of events gives the same rows.

Checked on the pure fold, and on the database path (the projector on SQLite, events split
into random batches), which must agree with the pure fold row for row.
"""

from __future__ import annotations

import asyncio
import tempfile
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from read_model.database import open_store, upgrade_schema
from read_model.tables import session_history, sessions
from read_model.unit_of_work import UnitOfWork
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
from session_contracts.topics import Topics
from session_registry.adapters.session_store import state_from_row
from session_registry.domain.fold import fold
from session_registry.domain.state import SessionState

T0 = datetime(2030, 1, 1, tzinfo=UTC)
SESSION_IDS = (session_handle("acme", "s1"), session_handle("acme", "s2"))


def _at(seconds: int) -> datetime:
    return T0 + timedelta(seconds=seconds)


times = st.integers(min_value=0, max_value=12).map(_at)  # small range: ties happen
ips = st.sampled_from(["10.0.0.1", "10.0.0.2", "2001:db8::1"])
common = {
    "event_id": st.uuids(version=4),
    "occurred_at": times,
    "tenant_id": st.sampled_from(["acme", "globex"]),
    "session_id": st.sampled_from(SESSION_IDS),
}
created = st.builds(
    SessionCreated,
    **common,
    user_id=st.sampled_from(["u1", "u2"]),
    user_name=st.sampled_from(["Ada", "Bob"]),
    session_type=st.sampled_from(list(SessionType)),
    ip_address=ips,
    user_agent=st.sampled_from([None, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Firefox/125.0"]),
    device=st.sampled_from([None, "Kiosk"]),
    policy=st.builds(
        SessionPolicy,
        max_session_seconds=st.integers(1, 60),
        idle_timeout_seconds=st.integers(1, 60),
    ),
)
activity = st.builds(SessionActivity, **common, ip_address=st.none() | ips)
terminated = st.builds(
    SessionTerminated,
    **common,
    reason=st.sampled_from(list(TerminationReason)),
    terminated_by=st.sampled_from([None, "admin-1", "admin-2"]),
)
expired = st.builds(SessionExpired, **common, reason=st.sampled_from(list(ExpiryReason)))
event_sets = st.lists(
    st.one_of(created, activity, activity, activity, terminated, expired),
    min_size=1,
    max_size=30,
    unique_by=lambda e: e.event_id,
)


@st.composite
def shuffled_with_duplicates(draw: st.DrawFn, events: list[SessionEvent]) -> list[SessionEvent]:
    """The events in a random order, some of them more than once."""
    extra = draw(st.lists(st.sampled_from(events), max_size=len(events)))
    return draw(st.permutations(events + extra))


def pure_rows(events: list[SessionEvent]) -> dict[tuple[str, str], SessionState]:
    by_session: dict[tuple[str, str], list[SessionEvent]] = {}
    for event in events:
        by_session.setdefault((event.tenant_id, event.session_id), []).append(event)
    rows: dict[tuple[str, str], SessionState] = {}
    for key, group in by_session.items():
        state = fold(group)
        assert state is not None
        rows[key] = state
    return rows


@settings(max_examples=300, deadline=None)
@given(data=st.data(), events=event_sets)
def test_pure_fold_converges(data: st.DataObject, events: list[SessionEvent]) -> None:
    expected = pure_rows(events)
    for _ in range(3):
        assert pure_rows(data.draw(shuffled_with_duplicates(events))) == expected


async def _database_rows(
    url: str, batches: list[list[SessionEvent]]
) -> tuple[dict[tuple[str, str], SessionState], set[tuple[Any, ...]]]:
    from session_registry.service_layer.projection import Projector

    store = open_store(url)
    projector = Projector(Topics(prefix="prop."))
    try:
        await upgrade_schema(store)
        for batch in batches:
            await UnitOfWork(store).run(lambda u, b=batch: projector.apply(u, b, [], T0))  # type: ignore[misc]
        async with store.engine.connect() as conn:
            rows = {
                (r.tenant_id, r.session_id): state_from_row(r)
                for r in await conn.execute(select(sessions))
            }
            history = {
                (r.event_id, r.type, r.session_id)
                for r in await conn.execute(select(session_history))
            }
    finally:
        await store.dispose()
    return rows, history


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), events=event_sets)
def test_database_path_converges_to_the_pure_fold(
    data: st.DataObject, events: list[SessionEvent]
) -> None:
    expected = pure_rows(events)
    expected_history = {
        (str(e.event_id), e.type, e.session_id) for e in events if e.type != "session.activity"
    }
    ordered = data.draw(shuffled_with_duplicates(events))
    cuts = sorted(data.draw(st.sets(st.integers(1, len(ordered)), max_size=4)))
    batches = [ordered[a:b] for a, b in zip([0, *cuts], [*cuts, len(ordered)], strict=True)]
    with tempfile.TemporaryDirectory() as folder:
        url = f"sqlite+aiosqlite:///{Path(folder) / f'{uuid.uuid4().hex}.db'}"
        rows, history = asyncio.run(_database_rows(url, [b for b in batches if b]))
    assert rows == expected
    assert history == expected_history
