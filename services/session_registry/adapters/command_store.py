"""Applied termination commands (once each) and the revocations awaiting their tombstone."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from datetime import datetime

from sqlalchemy import delete, select, tuple_
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.tables import applied_commands, revocations, termination_requests
from session_contracts.models import SessionRevoked, TerminateSessions
from session_registry.adapters import pg_bulk
from session_registry.adapters.session_store import is_postgres


async def already_applied(conn: AsyncConnection, command_ids: Collection[str]) -> set[str]:
    """Which of these command ids were applied before."""
    if not command_ids:
        return set()
    query = select(applied_commands.c.command_id).where(
        applied_commands.c.command_id.in_(sorted(command_ids))
    )
    return set((await conn.execute(query)).scalars())


async def record_applied(
    conn: AsyncConnection, command: TerminateSessions, applied_at: datetime, terminated: int
) -> None:
    """Mark a command applied, with how many sessions it ended (the audit trail).

    The admin API records each request before publishing and commits once Kafka took it; if
    it dies in between, the command is applied with no request behind it. The request is then
    recorded here, so the audit trail and the status endpoint never miss an applied command
    (`requested`: the ids asked for, or for a filter what it ended).
    """
    dialect = postgresql if is_postgres(conn) else sqlite
    requested = len(set(command.session_ids)) if command.session_ids is not None else terminated
    await conn.execute(
        dialect.insert(termination_requests).on_conflict_do_nothing(
            index_elements=[termination_requests.c.command_id]
        ),
        {
            "command_id": str(command.command_id),
            "tenant_id": command.tenant_id,
            "requested_by": command.requested_by,
            "requested_at": command.requested_at,
            "reason": command.reason.value,
            "target": command.target(),
            "requested": requested,
        },
    )
    statement = dialect.insert(applied_commands).on_conflict_do_nothing(
        index_elements=[applied_commands.c.command_id]
    )
    await conn.execute(
        statement,
        {
            "command_id": str(command.command_id),
            "tenant_id": command.tenant_id,
            "requested_by": command.requested_by,
            "requested_at": command.requested_at,
            "applied_at": applied_at,
            "reason": command.reason.value,
            "target": command.target(),
            "terminated": terminated,
        },
    )


async def remember_revocations(conn: AsyncConnection, records: Iterable[SessionRevoked]) -> None:
    """Keep each published revocation until its tombstone is due (re-revoking replaces it)."""
    listed = list(records)
    if not listed:
        return
    if is_postgres(conn):
        await pg_bulk.save_revocations(
            conn, [(r.tenant_id, r.session_id, r.valid_until) for r in listed]
        )
        return
    rows = [
        {"tenant_id": r.tenant_id, "session_id": r.session_id, "valid_until": r.valid_until}
        for r in listed
    ]
    statement = sqlite.insert(revocations)
    statement = statement.on_conflict_do_update(
        index_elements=[revocations.c.tenant_id, revocations.c.session_id],
        set_={"valid_until": statement.excluded.valid_until},
    )
    await conn.execute(statement, rows)


async def due_tombstones(
    conn: AsyncConnection, now: datetime, limit: int
) -> Sequence[tuple[str, str]]:
    """Up to `limit` revocations whose `valid_until` has passed: (tenant_id, session_id)."""
    query = (
        select(revocations.c.tenant_id, revocations.c.session_id)
        .where(revocations.c.valid_until <= now)
        .order_by(revocations.c.valid_until, revocations.c.tenant_id, revocations.c.session_id)
        .limit(limit)
    )
    if is_postgres(conn):
        query = query.with_for_update(skip_locked=True)
    return [(row.tenant_id, row.session_id) for row in await conn.execute(query)]


async def forget_revocations(conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> None:
    """Delete revocation rows whose tombstone is being published."""
    if keys:
        columns = tuple_(revocations.c.tenant_id, revocations.c.session_id)
        await conn.execute(delete(revocations).where(columns.in_(list(keys))))
