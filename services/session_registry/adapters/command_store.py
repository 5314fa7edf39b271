"""Applied termination commands (once each), those deferred for their resolution, and the
revocations awaiting their tombstone."""

from __future__ import annotations

import json
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Row, Table, delete, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.requests import REQUEST_KEY, termination_request_row
from read_model.tables import (
    applied_commands,
    deferred_terminations,
    failed_commands,
    revocations,
    termination_requests,
)
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import decode_command
from session_contracts.models import SessionRevoked, TerminateSessions, as_utc
from session_contracts.tracing import (
    RecordHeaders,
    decode_headers,
    encode_headers,
    trace_headers,
)
from session_registry.adapters.queues import queue_level


async def already_applied(
    conn: AsyncConnection, commands: Collection[tuple[str, str]]
) -> set[tuple[str, str]]:
    """Which of these (tenant_id, command_id) were applied before (a command id counts within
    its tenant only: another tenant reusing it pre-empts nothing)."""
    if not commands:
        return set()
    key = tuple_(applied_commands.c.tenant_id, applied_commands.c.command_id)
    query = select(applied_commands.c.tenant_id, applied_commands.c.command_id).where(
        key.in_(sorted(commands))
    )
    return {(row.tenant_id, row.command_id) for row in await conn.execute(query)}


async def record_applied(
    uow: UnitOfWork, command: TerminateSessions, applied_at: datetime, terminated: int
) -> None:
    """Mark a command applied, with how many sessions it ended (the audit trail).

    The admin API records each request once Kafka took its command, so the registry often
    applies a command before its request is recorded, and if the admin API dies in between,
    never is. The request is then recorded here, so the audit trail and the status endpoint
    never miss an applied command (`requested`: the ids asked for, or for a filter what it
    ended, until the admin API's record sets the count the admin confirmed).
    """
    requested = len(set(command.session_ids)) if command.session_ids is not None else terminated
    await uow.conn.execute(
        uow.store.insert(termination_requests).on_conflict_do_nothing(
            index_elements=list(REQUEST_KEY)
        ),
        termination_request_row(command, requested),
    )
    statement = uow.store.insert(applied_commands).on_conflict_do_nothing(
        index_elements=[applied_commands.c.tenant_id, applied_commands.c.command_id]
    )
    await uow.conn.execute(
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


async def record_failed(
    uow: UnitOfWork, command: TerminateSessions, failed_at: datetime, terminated: int
) -> None:
    """Mark a command given up (sent to the dead-letter topic), with how many sessions it
    ended before (`failed_commands`); its request is recorded as `record_applied` records it.

    A command given up again (redriven, and failing again) adds what that attempt ended: each
    attempt starts over from what is still open, so the sum is what all of them ended.
    """
    requested = len(set(command.session_ids)) if command.session_ids is not None else terminated
    await uow.conn.execute(
        uow.store.insert(termination_requests).on_conflict_do_nothing(
            index_elements=list(REQUEST_KEY)
        ),
        termination_request_row(command, requested),
    )
    statement = uow.store.insert(failed_commands)
    await uow.conn.execute(
        statement.on_conflict_do_update(
            index_elements=[failed_commands.c.tenant_id, failed_commands.c.command_id],
            set_={
                "failed_at": statement.excluded.failed_at,
                "terminated": failed_commands.c.terminated + statement.excluded.terminated,
            },
        ),
        {
            "command_id": str(command.command_id),
            "tenant_id": command.tenant_id,
            "requested_at": command.requested_at,
            "failed_at": failed_at,
            "terminated": terminated,
        },
    )


@dataclass(frozen=True)
class Deferred:
    """A termination by a text filter not applied yet, and how far its resolution got."""

    command: TerminateSessions
    partition: int | None
    """Its partition of the commands topic (None: any registry resolves it)."""
    offset: int | None
    headers: list[tuple[str, bytes]]
    """Its record's trace context headers (none without tracing)."""
    deferred_at: datetime
    ended_after: str | None
    terminated: int
    """Sessions its chunks ended so far."""

    @property
    def key(self) -> tuple[str, str]:
        """(tenant_id, command_id)."""
        return (self.command.tenant_id, str(self.command.command_id))


async def defer(
    uow: UnitOfWork,
    command: TerminateSessions,
    origin: tuple[int, int] | None,
    now: datetime,
    headers: RecordHeaders | None = None,
) -> None:
    """Keep a command for resolution beside the consumer loop, once per (tenant, command id);
    `origin`: its (partition, offset) on the commands topic, if known; `headers`: its record's
    headers, of which the trace context is kept."""
    statement = uow.store.insert(deferred_terminations).on_conflict_do_nothing(
        index_elements=[deferred_terminations.c.tenant_id, deferred_terminations.c.command_id]
    )
    await uow.conn.execute(
        statement,
        {
            "command_id": str(command.command_id),
            "tenant_id": command.tenant_id,
            "partition": None if origin is None else origin[0],
            "record_offset": None if origin is None else origin[1],
            "trace_headers": encode_headers(trace_headers(headers)),
            "command": command.model_dump(mode="json"),
            "deferred_at": now,
        },
    )


def _deferred(row: Row[Any]) -> Deferred:
    return Deferred(
        # through the codec, which upcasts a command kept by an older registry
        decode_command(json.dumps(row.command).encode()),
        row.partition,
        row.record_offset,
        decode_headers(row.trace_headers),
        as_utc(row.deferred_at),
        row.ended_after,
        row.terminated,
    )


_d = deferred_terminations.c


async def deferred_commands(
    conn: AsyncConnection, partitions: Collection[int] | None = None
) -> list[Deferred]:
    """The deferred commands, oldest first: of these partitions of the commands topic (and
    those of no partition), or all."""
    # in the order the batches took them: a batch's commands share its time, and its
    # partition's offsets order them
    query = select(deferred_terminations).order_by(
        _d.deferred_at, _d.partition, _d.record_offset, _d.tenant_id, _d.command_id
    )
    if partitions is not None:
        query = query.where(or_(_d.partition.is_(None), _d.partition.in_(sorted(partitions))))
    return [_deferred(row) for row in await conn.execute(query)]


async def lock_deferred(uow: UnitOfWork, key: tuple[str, str]) -> Deferred | None:
    """The deferred command, locked until the unit of work ends; None once it was applied.
    Two registries ending chunks of one command take turns on it."""
    query = select(deferred_terminations).where(_d.tenant_id == key[0], _d.command_id == key[1])
    row = (await uow.conn.execute(uow.store.for_update(query))).one_or_none()
    return None if row is None else _deferred(row)


async def advance_deferred(
    uow: UnitOfWork, key: tuple[str, str], ended_after: str, terminated: int
) -> None:
    """Note how far a deferred command's resolution got: ended up to `ended_after`."""
    await uow.conn.execute(
        update(deferred_terminations)
        .where(_d.tenant_id == key[0], _d.command_id == key[1])
        .values(ended_after=ended_after, terminated=terminated)
    )


async def forget_deferred(uow: UnitOfWork, key: tuple[str, str]) -> None:
    """Drop a deferred command once applied (in the transaction that records it applied)."""
    await uow.conn.execute(
        delete(deferred_terminations).where(_d.tenant_id == key[0], _d.command_id == key[1])
    )


async def deferred_level(conn: AsyncConnection, now: datetime) -> tuple[int, float]:
    """How many commands wait for their resolution, and how long the oldest has (0: none)."""
    return await queue_level(conn, _d.deferred_at, now)


async def remember_revocations(uow: UnitOfWork, records: Iterable[SessionRevoked]) -> None:
    """Keep each published revocation until its tombstone is due, with the record's fields
    (the revocation guard writes it again from them alone); re-revoking keeps the later
    `valid_until` (the store's upsert), so no later record brings the tombstone forward."""
    rows = [
        (r.tenant_id, r.session_id, r.valid_until, str(r.session_type), r.revoked_at, str(r.reason))
        for r in records
    ]
    await uow.store.save_revocations(uow.conn, rows)


async def due_tombstones(uow: UnitOfWork, now: datetime, limit: int) -> Sequence[tuple[str, str]]:
    """Up to `limit` revocations whose `valid_until` has passed: (tenant_id, session_id).

    Rows another writer holds are skipped (the next sweep gets them).
    """
    query = (
        select(revocations.c.tenant_id, revocations.c.session_id)
        .where(revocations.c.valid_until <= now)
        .order_by(revocations.c.valid_until, revocations.c.tenant_id, revocations.c.session_id)
        .limit(limit)
    )
    query = uow.store.for_update(query, skip_locked=True)
    return [(row.tenant_id, row.session_id) for row in await uow.conn.execute(query)]


async def forget_revocations(conn: AsyncConnection, keys: Sequence[tuple[str, str]]) -> None:
    """Delete revocation rows whose tombstone is being published."""
    if keys:
        columns = tuple_(revocations.c.tenant_id, revocations.c.session_id)
        await conn.execute(delete(revocations).where(columns.in_(list(keys))))


AUDIT_TABLES: tuple[Table, ...] = (applied_commands, termination_requests, failed_commands)
"""The audit trail: what was applied, what was given up, and what admins asked for (each keyed
by tenant and command id, each with the command's `requested_at`)."""


async def forget_audit_before(uow: UnitOfWork, table: Table, before: datetime, limit: int) -> int:
    """Delete up to `limit` rows of an audit table (`AUDIT_TABLES`) whose command was
    requested before `before` (now - the audit retention). In no order, as the deletion of
    ended sessions, and as it, rows another writer holds (another registry's sweep of the same
    hour) are skipped rather than waited for, so two sweeps never lock each other's rows."""
    key = tuple_(table.c.tenant_id, table.c.command_id)
    chosen = select(table.c.tenant_id, table.c.command_id).where(table.c.requested_at < before)
    locked = uow.store.for_update(chosen.limit(limit), skip_locked=True)
    keys = [tuple(row) for row in await uow.conn.execute(locked)]
    if not keys:
        return 0
    await uow.conn.execute(delete(table).where(key.in_(keys)))
    return len(keys)
