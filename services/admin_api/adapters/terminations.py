"""Termination requests: recording them, their status, and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.requests import REQUEST_KEY, termination_request_row
from read_model.tables import applied_commands, deferred_terminations, termination_requests
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import TerminateSessions

_r = termination_requests.c
_a = applied_commands.c
_d = deferred_terminations.c


async def record_request(uow: UnitOfWork, command: TerminateSessions, requested: int) -> None:
    """Store an accepted request; it stays `pending` until the registry applies the command.

    The registry may have recorded it already, having applied the command before this (see
    `read_model.requests`): the row is the same but for `requested`, where the admin API's
    count (the one the admin confirmed) wins.
    """
    statement = uow.store.insert(termination_requests)
    await uow.conn.execute(
        statement.on_conflict_do_update(
            index_elements=list(REQUEST_KEY), set_={"requested": statement.excluded.requested}
        ),
        termination_request_row(command, requested),
    )


@dataclass(frozen=True)
class RequestStatus:
    """Where a request stands: `applied` with how many sessions it ended, or `pending` with
    how many it has ended so far (a termination by a text filter, which the registry applies
    in chunks beside its loop: `deferred_terminations`; 0 for any other)."""

    status: Literal["pending", "applied"]
    terminated: int
    applied_at: datetime | None


def _with_outcome() -> Any:
    joined = termination_requests.outerjoin(
        applied_commands, and_(_a.tenant_id == _r.tenant_id, _a.command_id == _r.command_id)
    ).outerjoin(
        deferred_terminations, and_(_d.tenant_id == _r.tenant_id, _d.command_id == _r.command_id)
    )
    # applied: what it ended; pending: what its chunks ended so far (none before the first)
    terminated = func.coalesce(_a.terminated, _d.terminated, 0).label("terminated")
    return select(termination_requests, terminated, _a.applied_at.label("applied_at")).select_from(
        joined
    )


async def request_status(
    conn: AsyncConnection, tenant_id: str, command_id: str
) -> RequestStatus | None:
    """The status of one of the tenant's requests; None when it has no such request."""
    row = (
        await conn.execute(
            _with_outcome().where(_r.tenant_id == tenant_id, _r.command_id == command_id)
        )
    ).first()
    if row is None:
        return None
    status: Literal["pending", "applied"] = "pending" if row.applied_at is None else "applied"
    return RequestStatus(status, int(row.terminated), row.applied_at)


@dataclass(frozen=True)
class AuditQuery:
    """Which requests of the tenant: a time range `[since, until)`, an admin, a page."""

    since: datetime | None = None
    until: datetime | None = None
    requested_by: str | None = None
    limit: int = 50
    after: tuple[datetime, str] | None = None


async def audit_page(
    conn: AsyncConnection, tenant_id: str, query: AuditQuery
) -> list[dict[str, Any]]:
    """Up to `limit + 1` requests, newest first, with what they did."""
    conditions = [_r.tenant_id == tenant_id]
    if query.since is not None:
        conditions.append(_r.requested_at >= query.since)
    if query.until is not None:
        conditions.append(_r.requested_at < query.until)
    if query.requested_by is not None:
        conditions.append(_r.requested_by == query.requested_by)
    if query.after is not None:
        at, command_id = query.after
        conditions.append(
            or_(_r.requested_at < at, and_(_r.requested_at == at, _r.command_id < command_id))
        )
    statement = (
        _with_outcome()
        .where(*conditions)
        .order_by(_r.requested_at.desc(), _r.command_id.desc())
        .limit(query.limit + 1)
    )
    return [dict(r._mapping) for r in await conn.execute(statement)]
