"""`is_active` and `active_condition` are one definition: they pick the same sessions, on both
backends, and the list's clauses are built from them."""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select

from read_model.active import (
    EXPIRED,
    LISTED,
    OPEN,
    TERMINATED,
    active_condition,
    is_active,
    is_listed,
    listed_condition,
    open_condition,
    unswept_condition,
)
from read_model.database import make_engine, upgrade_schema
from read_model.session_query import active_clause, filter_clause
from read_model.tables import sessions
from session_contracts.models import SessionFilter

NOW = datetime(2030, 1, 1, tzinfo=UTC)


@dataclass(frozen=True)
class Session:
    session_id: str
    state: str
    created_at: datetime | None
    expires_at: datetime | None
    session_type: str | None


def every_kind() -> list[Session]:
    """Each state, created or not, expiring before, at or after NOW (or never), of each type."""
    expiries = (None, NOW - timedelta(microseconds=1), NOW, NOW + timedelta(microseconds=1))
    kinds = itertools.product(
        (OPEN, TERMINATED, EXPIRED),
        (None, NOW - timedelta(days=1)),
        expiries,
        (*LISTED, "api_client", None),
    )
    return [Session(f"s{i}", *kind) for i, kind in enumerate(kinds)]


async def test_the_predicate_and_the_clauses_pick_the_same_sessions(db_url: str) -> None:
    rows = every_kind()
    await upgrade_schema(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(sessions.insert(), [{"tenant_id": "t", **asdict(r)} for r in rows])

            async def picked(clause: ColumnElement[bool]) -> set[Any]:
                query = select(sessions.c.session_id).where(clause)
                return {row.session_id for row in await conn.execute(query)}

            active = await picked(active_condition(NOW))
            listed = await picked(listed_condition())
            open_ = await picked(open_condition())
            unswept = await picked(unswept_condition(NOW))
            listed_active = await picked(active_clause("t", NOW))
            unfiltered = await picked(filter_clause(SessionFilter(), "t", NOW))
            other_tenant = await picked(active_clause("u", NOW))
    finally:
        await engine.dispose()
    assert active == {r.session_id for r in rows if is_active(r, NOW)}
    assert listed == {r.session_id for r in rows if is_listed(r.session_type)}
    assert active and listed and unswept  # the grid holds each kind
    # an open session with an expiry is either active or waiting for the sweeper
    with_expiry = {r.session_id for r in rows if r.expires_at is not None}
    assert open_ & with_expiry == active | unswept and not active & unswept
    assert listed_active == unfiltered == active & listed
    assert other_tenant == set()
