"""Swapping a rebuilt database in place of the live one.

The rebuilt database holds what the event log determines (sessions, history, positions on the
events topic). Everything else the live database knows but the log does not (applied commands,
termination requests, revocations awaiting tombstones, the outbox, the admin API's tables, and
positions on the commands topic) is copied over first; the rebuild's events positions are
stored under the live consumer name, so the live registry resumes where the rebuild stopped.

The replay publishes nothing, so a record it folded that the live registry had not read yet
and that ends a session the gateways must refuse (a logout; the late creation of a session an
admin had already terminated by id) was revoked by nobody: the live registry resumes past it.
Until 2026-12-06 such a session stayed valid at every gateway (found by a review). The swap now
revokes, through the outbox, every terminated session of the rebuilt database that could still
be valid and has no revocation the live registry wrote, or one ending before the session could
(`revoke_what_the_log_ended`); the live registry sends them at its start.

Stop the registry (and on PostgreSQL anything else connected) before swapping: the CLI refuses
while a member of its consumer group is connected.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

from sqlalchemy import and_, delete, insert, or_, select, tuple_

from read_model.active import EXPIRED, TERMINATED
from read_model.database import open_store
from read_model.postgres import PostgresStore
from read_model.tables import consumer_positions, metadata, revocations, sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import as_utc
from session_contracts.redaction import redact_url
from session_contracts.topics import Topics
from session_registry.adapters.positions import save_positions
from session_registry.adapters.session_store import lock_states
from session_registry.domain.lifecycle import needs_revocation, valid_until
from session_registry.domain.state import SessionState
from session_registry.service_layer.changes import Changes
from session_registry.service_layer.rebuild import RebuildReport

DERIVED = {"sessions", "session_history", "consumer_positions", "positions_past_end"}


async def carry_over(
    live_url: str,
    rebuilt_url: str,
    topics: Topics,
    live_consumer: str,
    report: RebuildReport,
    now: datetime | None = None,
) -> dict[str, int]:
    """Copy what the log does not determine from the live database, and revoke what the
    replay ended that nobody revoked (`revoke_what_the_log_ended`, as of `now`); return rows
    per table (`revoked`: the revocations queued)."""
    copied: dict[str, int] = {}
    source, target = open_store(live_url), open_store(rebuilt_url)
    try:
        async with source.engine.connect() as conn:
            tables = {
                name: [dict(r._mapping) for r in await conn.execute(select(table))]
                for name, table in metadata.tables.items()
                if name not in DERIVED
            }
            commands = [
                dict(r._mapping)
                for r in await conn.execute(
                    select(consumer_positions).where(consumer_positions.c.topic != topics.events)
                )
            ]

        async def _write(uow: UnitOfWork) -> None:
            tconn = uow.conn
            for name, rows in tables.items():
                table = metadata.tables[name]
                await tconn.execute(delete(table))
                if rows:
                    await tconn.execute(insert(table), rows)
                    if "id" in table.c and table.c.id.autoincrement is True:
                        # copied with their ids: the next ones come after them (PostgreSQL's
                        # sequence stood at 1, and the first row queued collided)
                        await uow.store.continue_ids(tconn, table)
                copied[name] = len(rows)
            if commands:
                await tconn.execute(insert(consumer_positions), commands)
            await save_positions(uow, live_consumer, report.positions)
            copied["revoked"] = await revoke_what_the_log_ended(
                uow, topics, now or datetime.now(UTC)
            )

        await UnitOfWork(target).run(_write)
    finally:
        await source.dispose()
        await target.dispose()
    return copied


async def revoke_what_the_log_ended(uow: UnitOfWork, topics: Topics, now: datetime) -> int:
    """Queue a revocation (row and outbox record) for every created, terminated session that
    could still be valid at `now` and whose revocation row, if any, ends before it could;
    return how many.

    A row that ends earlier was written under another creation: one forged, read first from
    another partition, dated back with a short policy, which the replay, reading every
    partition, replaced by the creation the broker appended first. The live registry, resumed
    past that creation, would never revoke it again, and the sweeper's tombstone at the row's
    `valid_until` would let the session back in at every gateway (a review, 2026-12-06). The
    revocations upsert keeps the later `valid_until`.

    Terminated sessions are kept for `SESSIONS_ENDED_RETENTION_DAYS`, most long past their
    `valid_until` (their revocations tombstoned and deleted): only the times are read of them,
    a chunk at a time, and the rows of the few still valid."""
    _s, _r = sessions.c, revocations.c
    ended = (
        select(
            _s.tenant_id,
            _s.session_id,
            _s.created_at,
            _s.max_session_seconds,
            _r.valid_until.label("revoked_until"),
        )
        .select_from(
            sessions.outerjoin(
                revocations,
                and_(_r.tenant_id == _s.tenant_id, _r.session_id == _s.session_id),
            )
        )
        .where(
            or_(
                _s.state == TERMINATED,
                # expired, and served after (`lifecycle.served_after_expiry`)
                and_(_s.state == EXPIRED, _s.last_activity_at > _s.ended_at),
            ),
            _s.created_at.is_not(None),
        )
    )
    due: list[tuple[str, str]] = []
    async for row in await uow.conn.stream(ended):
        times = SessionState(
            tenant_id=row.tenant_id,
            session_id=row.session_id,
            created_at=as_utc(row.created_at),
            max_session_seconds=row.max_session_seconds,
        )
        until = valid_until(times)
        if until is None or until <= now:
            continue
        if row.revoked_until is None or as_utc(row.revoked_until) < until:
            due.append(times.key)
    changes = Changes()
    for start in range(0, len(due), _REVOKED_PER_READ):
        keys = due[start : start + _REVOKED_PER_READ]
        chosen = select(sessions).where(tuple_(_s.tenant_id, _s.session_id).in_(keys))
        for state in await lock_states(uow, chosen):
            if needs_revocation(None, state, now):
                changes.revoke(topics, state)
    await changes.flush(uow, True, states=False)
    return len(changes.revoked)


_REVOKED_PER_READ = 500
"""Sessions read whole at once by `revoke_what_the_log_ended`."""


async def swap_refusal(live_url: str, rebuilt_url: str) -> str | None:
    """Why the rebuilt database cannot be swapped in for the live one (None: it can), asked
    before the carry-over: `replace_with` refuses the same, after it. On PostgreSQL the swap
    renames databases on the live one's server: a rebuild `--into` another server had its
    carry-over written there, then renamed in a database of the rebuilt one's name on the live
    server, a stale one left by an earlier rebuild, say: the registry ran on an old read
    model, missing revocations (a review, stop 70)."""
    live, rebuilt = open_store(live_url), open_store(rebuilt_url)
    try:
        if type(live) is not type(rebuilt):
            return (
                f"the rebuilt database {redact_url(rebuilt_url)} is not on the live "
                f"database's backend ({redact_url(live_url)}): a swap renames one into the "
                "other's place"
            )
        if not isinstance(live, PostgresStore) or not isinstance(rebuilt, PostgresStore):
            return None
        here, there = await live.identity(), await rebuilt.identity()
        if here is None or there is None or here[:3] != there[:3]:
            return (
                f"the rebuilt database {redact_url(rebuilt_url)} is not on the live database's "
                f"server ({redact_url(live_url)}): a swap renames databases on one server"
            )
        return None
    finally:
        await live.dispose()
        await rebuilt.dispose()


async def swap(live_url: str, rebuilt_url: str) -> str:
    """Put the rebuilt database where the live one was; return where the old one went.
    Raises ValueError when they cannot be swapped (`Store.replace_with`)."""
    live, rebuilt = open_store(live_url), open_store(rebuilt_url)
    try:
        return await live.replace_with(rebuilt, time.strftime("%Y%m%d%H%M%S"))
    finally:
        await live.dispose()
        await rebuilt.dispose()
