"""Termination requests: recording them, their status, and the audit trail."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import and_, func, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.requests import REQUEST_KEY, termination_request_row
from read_model.tables import (
    applied_commands,
    deferred_terminations,
    failed_commands,
    termination_requests,
)
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import TerminateSessions, as_utc

_r = termination_requests.c
_a = applied_commands.c
_d = deferred_terminations.c
_f = failed_commands.c


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


async def recorded_count(conn: AsyncConnection, tenant_id: str, command_id: str) -> int | None:
    """The `requested` of the tenant's request `command_id`, recorded by the admin API or by the
    registry on applying its command; None when there is none (or no longer: the audit trail's
    retention)."""
    found = await conn.scalar(
        select(_r.requested).where(_r.tenant_id == tenant_id, _r.command_id == command_id)
    )
    return None if found is None else int(found)


Status = Literal["pending", "applied", "failed"]


def _status_of(row: Any) -> Status:
    """A request's status from its `_with_outcome` row: `applied` once the registry applied
    it; `failed` once it gave the command up (`failed_commands`: it is on the dead-letter
    topic), unless a redrive is resolving it again; `pending` otherwise."""
    if row.applied_at is not None:
        return "applied"
    if row.failed_at is not None and row.deferred_at is None:
        return "failed"
    return "pending"


@dataclass(frozen=True)
class RequestStatus:
    """Where a request stands (`_status_of`; its times in UTC), with how many sessions it
    ended: all of them once `applied`, those ended before it was given up when `failed`, and
    so far when `pending` (a termination by a text filter, which the registry applies in
    chunks beside its loop: `deferred_terminations`; 0 for any other)."""

    status: Status
    terminated: int
    applied_at: datetime | None
    failed_at: datetime | None


def _with_outcome() -> Any:
    def same(c: Any) -> Any:
        return and_(c.tenant_id == _r.tenant_id, c.command_id == _r.command_id)

    joined = (
        termination_requests.outerjoin(applied_commands, same(_a))
        .outerjoin(deferred_terminations, same(_d))
        .outerjoin(failed_commands, same(_f))
    )
    # applied: what it ended; pending: what its chunks ended so far (none before the first);
    # each attempt given up before (a redrive starts over from what is still open) adds its own
    terminated = func.coalesce(_a.terminated, _d.terminated, 0) + func.coalesce(_f.terminated, 0)
    return select(
        termination_requests,
        terminated.label("terminated"),
        _a.applied_at.label("applied_at"),
        _f.failed_at.label("failed_at"),
        _d.deferred_at.label("deferred_at"),
    ).select_from(joined)


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
    return RequestStatus(
        _status_of(row), int(row.terminated), _utc(row.applied_at), _utc(row.failed_at)
    )


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
    """Up to `limit + 1` requests, newest first, with what they did (`status`: `_status_of`)."""
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
    return [
        {
            **r._mapping,
            "status": _status_of(r),
            "applied_at": _utc(r.applied_at),
            "failed_at": _utc(r.failed_at),
        }
        for r in await conn.execute(statement)
    ]


def _utc(stored: datetime | None) -> datetime | None:
    """A stored time read back, in UTC (SQLite hands it back naive)."""
    return None if stored is None else as_utc(stored)
