"""Applying `sessions.terminate` commands: once per command id, within the command's tenant.

Targets are the tenant's open sessions (created, neither terminated nor expired), whatever
their `expires_at`:
- by explicit ids, any session type of the tenant may be ended;
- by filter, what the list API shows for that filter (listed types, the same
  `conditions_clause`), and created no later than `confirmed_at` (the moment of the count the
  admin confirmed, at most `requested_at`): a session created while the confirmation was
  open is not ended.
An open session past its `expires_at` is ended too. The registry's `expires_at` is only as
late as the activity it has read: the sweeper has not expired such a session because activity
not applied yet may carry it on (the grace, or a partition of the group behind), and it may be
alive on the platform. Until 2026-12-06 a command passed over a session past its deadline by
more than the activity grace, so a command read before the session's latest activity (the
registry behind on the session's events partition) ended nothing, and the session, alive,
was never revoked. Revoking one the platform had already timed out costs a revocation record.
A command id counts within its tenant: another tenant's command with the same id is another
command. Each target gets a `session.terminated` event (id uuid5(command_id, session_id)),
folded into its row here and published through the outbox, and a revocation record.

A command by filter (one tenant's sessions, possibly millions) is applied set-based, in chunks
of `FILTER_CHUNK` sessions within the batch's one transaction: one `UPDATE ... RETURNING` ends a
chunk (the rows chosen and locked in session id order, so every writer locks in one order), and
its history entries, revocations and outbox records are written in one bulk statement each.
What it writes is what the per-row fold writes (`_end` on an open session: state, `ended_at`,
`end_reason`, `ended_by`; `expires_at` of a created session does not depend on its end); a
crash anywhere rolls the whole batch back, as before.

A command by a filter with a substring condition or `policy_outdated` (`may_walk`) is not
resolved there when the caller defers them (`defer_searches`, as the registry does): a text no
index answers, and `policy_outdated` always, reads the tenant's whole listed set, seconds at
millions of sessions, which every tenant's events and revocations would wait behind. The
batch keeps it in `deferred_terminations`, and the registry's resolver
(`deferred_terminations`) reads its targets outside any write transaction (`resolve_chunk`)
and ends each chunk in a transaction of its own (`end_resolved`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple

from opentelemetry.trace import SpanKind
from opentelemetry.util.types import AttributeValue
from sqlalchemy import ColumnElement, Select, and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.active import OPEN, TERMINATED, listed_open_condition, open_condition
from read_model.session_query import conditions_clause, may_walk
from read_model.store import Store
from read_model.tables import sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SessionTerminated, TerminateSessions, as_utc
from session_contracts.topics import Topics
from session_contracts.tracing import (
    RecordHeaders,
    extract_context,
    inject_headers,
    tracer,
    tracing_on,
)
from session_registry.adapters.command_store import already_applied, defer, record_applied
from session_registry.adapters.session_store import claim_sessions, lock_states
from session_registry.domain.fold import merge, refresh
from session_registry.domain.history import history_entry
from session_registry.domain.lifecycle import (
    needs_revocation,
    revocations,
    termination_event,
    termination_events,
)
from session_registry.domain.state import ACTIVITY_ONLY_SECONDS, SessionState
from session_registry.service_layer.changes import Changes

_s = sessions.c
FILTER_CHUNK = 5000
"""Sessions a command by filter ends per statement (its rows, events and records in memory)."""

log = logging.getLogger(__name__)


class Applied(NamedTuple):
    """What `apply_commands` did."""

    commands: int
    """Commands applied."""
    terminated: int
    """Sessions they ended."""
    deferred: int
    """Commands by a text filter kept for the resolver instead (`defer_searches`)."""
    awaiting_creation: int = 0
    """Sessions named by id and not created yet, whose end is kept until their creation
    (`_end_by_ids`); not in `terminated`."""


def target_clause(command: TerminateSessions) -> ColumnElement[bool]:
    """The sessions a command by filter ends: its tenant's listed open sessions matching the
    filter, whatever their `expires_at` (the module says why), created no later than the
    count the admin confirmed. A command by ids is resolved row by row (`_end_by_ids`)."""
    assert command.filter is not None
    return and_(
        _s.tenant_id == command.tenant_id,
        listed_open_condition(),
        # `policy_outdated` against the settings of the confirmed count, not today's
        conditions_clause(
            command.filter, tenant=command.tenant_id, policies_at=_count_moment(command)
        ),
        _confirmed(command),
    )


def _count_moment(command: TerminateSessions) -> datetime:
    """When the count the admin confirmed was read (a command by filter)."""
    assert command.confirmed_at is not None
    return min(command.confirmed_at, command.requested_at)


def _confirmed(command: TerminateSessions) -> ColumnElement[bool]:
    """Created no later than the count the admin confirmed (a command by filter): the count is
    binding, nothing created after it is ended."""
    return _s.created_at <= _count_moment(command)


async def apply_commands(
    uow: UnitOfWork,
    commands: Sequence[TerminateSessions],
    now: datetime,
    topics: Topics,
    changes: Changes,
    command_headers: Mapping[tuple[str, str], RecordHeaders] | None = None,
    *,
    defer_searches: bool = False,
    origins: Mapping[tuple[str, str], tuple[int, int]] | None = None,
    activity_only_seconds: int = ACTIVITY_ONLY_SECONDS,
) -> Applied:
    """Apply the commands not applied before; say how many, and how many sessions they ended.

    `command_headers`: each command's Kafka headers by (tenant_id, command_id), whose trace
    context its span continues. `defer_searches`: a command by a
    filter that may walk (`may_walk`) is kept in `deferred_terminations` (once), with its
    (partition, offset) on the commands topic from `origins`, for the resolver, not applied
    here. `activity_only_seconds`: how long a row is kept for a session named by id and not
    created yet (`compute_expires_at`)."""
    command_headers = command_headers or {}
    unique: dict[tuple[str, str], TerminateSessions] = {}
    for command in commands:  # the first record of an id counts, as across batches
        unique.setdefault((command.tenant_id, str(command.command_id)), command)
    done = await already_applied(uow.conn, unique.keys())
    applied = terminated = deferred = awaiting = 0
    traced = tracing_on()  # off: no span, no context, no header, for any command or record
    for command_id, command in unique.items():
        if command_id in done:
            continue
        if defer_searches and command.filter is not None and may_walk(command.filter):
            origin = (origins or {}).get(command_id)
            await defer(uow, command, origin, now, command_headers.get(command_id))
            log.info(
                "termination command by a text filter deferred: resolved beside the loop",
                extra={"tenant_id": command.tenant_id, "command_id": command_id[1]},
            )
            deferred += 1
            continue
        with command_span(command_id, command_headers.get(command_id), traced):
            ended, kept = await _apply_one(
                uow, command, now, topics, changes, traced, activity_only_seconds
            )
        applied += 1
        terminated += ended
        awaiting += kept
    return Applied(applied, terminated, deferred, awaiting)


def command_span(
    key: tuple[str, str],
    headers: RecordHeaders | None,
    traced: bool,
    **attributes: AttributeValue,
) -> contextlib.AbstractContextManager[object]:
    """The span a command (`key`: tenant and command id) is applied in: a child of the admin
    API's span when its record's `headers` carry one; nothing while tracing is off."""
    if not traced:
        return contextlib.nullcontext()
    return tracer().start_as_current_span(
        "registry.apply_command",
        context=extract_context(headers),
        kind=SpanKind.CONSUMER,
        attributes={"tenant_id": key[0], "command_id": key[1], **attributes},
    )


async def _apply_one(
    uow: UnitOfWork,
    command: TerminateSessions,
    now: datetime,
    topics: Topics,
    changes: Changes,
    traced: bool,
    activity_only_seconds: int,
) -> tuple[int, int]:
    """End the sessions one command targets; return how many, and how many named by id are
    kept ended until their creation."""
    # this span's context, for the revocations' records
    headers = tuple(inject_headers()) if traced else ()
    command_id = str(command.command_id)
    kept = 0
    if command.filter is not None:
        ended = await end_by_filter(uow, command, now, topics, changes, headers)
    else:
        ended, kept = await _end_by_ids(
            uow, command, now, topics, changes, headers, activity_only_seconds
        )
    await record_applied(uow, command, now, ended)
    # in the batch's transaction: a retried batch logs it again
    log.info(
        "termination command applied: %d session(s) ended",
        ended,
        extra={"tenant_id": command.tenant_id, "command_id": command_id},
    )
    return ended, kept


async def _end_by_ids(
    uow: UnitOfWork,
    command: TerminateSessions,
    now: datetime,
    topics: Topics,
    changes: Changes,
    headers: tuple[tuple[str, bytes], ...],
    activity_only_seconds: int,
) -> tuple[int, int]:
    """End the listed sessions row by row, folding each (a handful: the low-latency path);
    return how many ended, and how many are kept ended until their creation.

    A listed session not created yet in the read model (its `session.created` is still on its
    way: another topic than the command's, a registry behind) is ended all the same, though
    not counted: the termination is folded into a row never created, as a `session.terminated`
    read before its creation is, and the creation, when it comes, folds into an ended session,
    which is revoked then (`needs_revocation`). Left out, the command would match nothing and
    the session would stay open for good, with nothing to revoke it. Such a row is claimed
    before anything is folded (`claim_sessions`): a creation another instance stores meanwhile
    is then read and ended here, not overwritten."""
    assert command.session_ids is not None
    named = sorted(set(command.session_ids))
    query = (
        select(sessions)
        .where(_s.tenant_id == command.tenant_id, _s.session_id.in_(named))
        .order_by(_s.tenant_id, _s.session_id)
    )
    stored = {state.key: state for state in await lock_states(uow, query)}
    keys = [(command.tenant_id, session_id) for session_id in named]
    if absent := [key for key in keys if key not in stored and key not in changes.states]:
        # Another registry instance may be storing one of these rows now (a creation folded
        # from its events partition): with no row to lock, writing the state folded here over
        # it would wipe that creation, and nothing would revoke the session. So hold a row of
        # each first, then fold into what is stored.
        blank = (SessionState(tenant_id=t, session_id=i) for t, i in absent)
        await claim_sessions(uow, (refresh(s, activity_only_seconds, now) for s in blank))
        stored = {state.key: state for state in await lock_states(uow, query)}
    ended = awaited = 0
    for key in keys:
        # earlier commands of this batch may have ended it already
        state = changes.states.get(key) or stored.get(key)
        if state is not None and state.created and state.state != OPEN:
            continue  # ended already
        state = state or SessionState(tenant_id=key[0], session_id=key[1])
        merge(state, _ended(command, state, topics, changes))
        changes.states[key] = refresh(state, activity_only_seconds, now)
        if not state.created:  # revoked when its creation comes (`needs_revocation`)
            awaited += 1
            continue
        # no copy of the state before: it was open, so the termination is new
        if needs_revocation(None, state, now):
            changes.revoke(topics, state, headers)
        ended += 1
    if awaited:
        log.info(
            "termination command names %d session(s) not created yet: ended when created",
            awaited,
            extra={"tenant_id": command.tenant_id, "command_id": str(command.command_id)},
        )
    return ended, awaited


async def end_by_filter(
    uow: UnitOfWork,
    command: TerminateSessions,
    now: datetime,
    topics: Topics,
    changes: Changes,
    headers: tuple[tuple[str, bytes], ...] = (),
    chunk: int | None = None,
) -> int:
    """End the sessions a filter targets, `chunk` (default `FILTER_CHUNK`) per `UPDATE`.

    Two stages overlap: while the database writes chunk n - 1's records and ends chunk n + 1,
    this process builds chunk n's events and records (the database works on another core);
    the connection runs one statement at a time (one task uses it at a time).
    """
    chunk = chunk or FILTER_CHUNK
    # what earlier commands of this batch collected is written first: the UPDATE sees the rows
    # as stored, so a session one of them ended is not ended twice
    await changes.drain(uow)
    ended = 0
    built: Changes | None = None  # the records of the chunk before, not written yet

    async def write_then_end(done: Changes | None, after: str | None) -> list[SessionState]:
        if done is not None:
            await done.drain(uow, states=False)
            changes.drained += done.drained
        return [] if after is None else await _end_chunk(uow, command, targets, after, chunk)

    targets = target_clause(command)
    states = await _end_chunk(uow, command, targets, None, chunk)
    while states:
        ended += len(states)
        after = states[-1].session_id if len(states) == chunk else None
        database = asyncio.ensure_future(write_then_end(built, after))
        try:
            built = Changes()
            await _queue_ended(command, states, now, topics, built, headers)
            states = await database
        finally:
            if not database.done():  # failed: the batch rolls back anyway
                database.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await database
    await write_then_end(built, None)
    return ended


_RETURNED = (
    _s.session_id,
    _s.session_type,
    _s.created_at,
    _s.max_session_seconds,
)
"""What an ended session's records need of its row (the rest is the command's)."""


async def resolve_chunk(
    conn: AsyncConnection,
    store: Store,
    command: TerminateSessions,
    after: str | None,
    chunk: int,
) -> list[str]:
    """The ids of the next `chunk` sessions a command by filter targets after session id
    `after`, in id order: a read that takes no lock (the resolver's, outside any write
    transaction; for a text no index answers, a walk of the tenant's listed sessions)."""
    chosen = _next_ids(store, target_clause(command), after, chunk)
    return list((await conn.execute(chosen)).scalars().all())


async def end_resolved(
    uow: UnitOfWork,
    command: TerminateSessions,
    ids: Sequence[str],
    now: datetime,
    topics: Topics,
    headers: tuple[tuple[str, bytes], ...] = (),
) -> int:
    """End those of `ids` (targets `resolve_chunk` read) that are still the tenant's and open,
    created no later than its confirmed count, with their events,
    history, revocations (with `headers`: the trace context) and outbox records; return how
    many. The filter is not tested again: a session that matched when read is ended even if
    its activity changed it since."""
    if not ids:
        return 0
    chosen = and_(
        _s.tenant_id == command.tenant_id,
        uow.store.one_of(_s.session_id, sorted(set(ids))),
        open_condition(),
        _confirmed(command),
    )
    states = await _end_chunk(uow, command, chosen, None, len(ids))
    changes = Changes()
    await _queue_ended(command, states, now, topics, changes, headers)
    await changes.flush(uow, True, states=False)
    return len(states)


def _next_ids(
    store: Store, targets: ColumnElement[bool], after: str | None, chunk: int
) -> Select[Any]:
    """The ids of the next `chunk` of `targets` after session id `after`, in id order."""
    order = store.binary_order(_s.session_id)  # as Python compares the ids
    # one tenant's: the session id alone orders the chunks
    chosen = select(_s.session_id).where(targets)
    if after is not None:
        chosen = chosen.where(order > after)
    return chosen.order_by(order).limit(chunk)


async def _end_chunk(
    uow: UnitOfWork,
    command: TerminateSessions,
    targets: ColumnElement[bool],
    after: str | None,
    chunk: int,
) -> list[SessionState]:
    """End the next `chunk` of `targets` after session id `after`; their states, in id
    order."""
    chosen = uow.store.for_update(_next_ids(uow.store, targets, after, chunk))
    # the chunk's ids first, then the UPDATE by primary key (as a subquery, the planner may
    # hash-join it against the whole table, once per chunk)
    ids = (await uow.conn.execute(chosen)).scalars().all()
    if not ids:
        return []
    # `_end` on an open session, which has no end yet
    statement = (
        update(sessions)
        .where(_s.tenant_id == command.tenant_id, uow.store.one_of(_s.session_id, ids))
        .values(
            state=TERMINATED,
            ended_at=command.requested_at,
            end_reason=command.reason.value,
            ended_by=command.requested_by,
        )
        .returning(*_RETURNED)
    )
    tenant_id, at = command.tenant_id, command.requested_at
    reason, by = command.reason.value, command.requested_by
    states = [
        SessionState(
            tenant_id=tenant_id,
            session_id=session_id,
            session_type=session_type,
            created_at=None if created_at is None else as_utc(created_at),
            max_session_seconds=max_session_seconds,
            state=TERMINATED,
            ended_at=at,
            end_reason=reason,
            ended_by=by,
        )
        for session_id, session_type, created_at, max_session_seconds in (
            (await uow.conn.execute(statement)).all()
        )
    ]
    states.sort(key=_session_id)
    return states


async def _queue_ended(
    command: TerminateSessions,
    states: Sequence[SessionState],
    now: datetime,
    topics: Topics,
    changes: Changes,
    headers: tuple[tuple[str, bytes], ...],
    every: int = 50,
) -> None:
    """Each ended session's event, history entry and revocation, collected in `changes`;
    other tasks run every `every` sessions (the next chunk's statements among them)."""
    events, records = termination_events(command), revocations()
    detail: dict[str, Any] | None = None  # every event of the command has the same
    for start in range(0, len(states), every):
        for state in states[start : start + every]:
            event = events(state)
            if detail is None:
                entry = history_entry(event)
                assert entry is not None
                detail = entry.detail
            _log_ended(command, state)
            changes.record(event, detail)
            changes.publish_event(topics, event)
            if needs_revocation(None, state, now):
                changes.revoke(topics, state, headers, records(state))
        await asyncio.sleep(0)


def _session_id(state: SessionState) -> str:
    return state.session_id


def _ended(
    command: TerminateSessions, state: SessionState, topics: Topics, changes: Changes
) -> SessionTerminated:
    """The command's `session.terminated` for this session, recorded and queued."""
    event = termination_event(command, state)
    _log_ended(command, state)
    changes.record(event)
    changes.publish_event(topics, event)
    return event


def _log_ended(command: TerminateSessions, state: SessionState) -> None:
    if log.isEnabledFor(logging.DEBUG):
        log.debug(
            "session terminated by command",
            extra={
                "tenant_id": command.tenant_id,
                "command_id": str(command.command_id),
                "session_handle": state.session_id,
            },
        )
