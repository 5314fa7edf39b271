"""Applying `sessions.terminate` commands: once per command id, within the command's tenant.

Targets are the sessions active at `requested_at`:
- by explicit ids, any session type of the tenant may be ended;
- by filter, exactly what the list API shows for that filter (listed types, active), resolved
  by the `filter_clause` the list API uses too, so what the admin saw is what gets ended, and
  created no later than `confirmed_at` (the moment of the count the admin confirmed, at most
  `requested_at`): a session created while the confirmation was open is not ended.
A command id counts within its tenant: another tenant's command with the same id is another
command. Each target gets a `session.terminated` event (id uuid5(command_id, session_id)),
folded into its row here and published through the outbox, and a revocation record.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Mapping, Sequence
from datetime import datetime

from opentelemetry.trace import SpanKind
from sqlalchemy import ColumnElement, and_, select

from read_model.active import OPEN, active_condition
from read_model.session_query import filter_clause
from read_model.tables import sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import TerminateSessions
from session_contracts.topics import Topics
from session_contracts.tracing import extract_context, inject_headers, tracer, tracing_on
from session_registry.adapters.command_store import already_applied, record_applied
from session_registry.adapters.session_store import lock_states
from session_registry.domain.fold import apply
from session_registry.domain.lifecycle import needs_revocation, termination_event
from session_registry.service_layer.changes import Changes

_s = sessions.c

log = logging.getLogger(__name__)


def target_clause(command: TerminateSessions) -> ColumnElement[bool]:
    """The sessions a command ends: its tenant's, active at `requested_at`, by ids or filter."""
    at = command.requested_at
    if command.session_ids is not None:
        return and_(
            _s.tenant_id == command.tenant_id,
            _s.session_id.in_(sorted(set(command.session_ids))),
            active_condition(at),
        )
    assert command.filter is not None and command.confirmed_at is not None
    # the count the admin confirmed is binding: nothing created after it is ended
    bound = min(command.confirmed_at, at)
    return and_(filter_clause(command.filter, command.tenant_id, at), _s.created_at <= bound)


async def apply_commands(
    uow: UnitOfWork,
    commands: Sequence[TerminateSessions],
    now: datetime,
    topics: Topics,
    changes: Changes,
    command_headers: Mapping[tuple[str, str], Sequence[tuple[str, bytes]]] | None = None,
) -> tuple[int, int]:
    """Apply the commands not applied before; return (commands applied, sessions terminated).

    `command_headers`: each command's Kafka headers by (tenant_id, command_id), whose trace
    context its span continues."""
    command_headers = command_headers or {}
    unique: dict[tuple[str, str], TerminateSessions] = {}
    for command in commands:  # the first record of an id counts, as across batches
        unique.setdefault((command.tenant_id, str(command.command_id)), command)
    done = await already_applied(uow.conn, unique.keys())
    applied = terminated = 0
    traced = tracing_on()  # off: no span, no context, no header, for any command or record
    for command_id, command in unique.items():
        if command_id in done:
            continue
        # a child of the admin API's span when the command's headers carry one
        span = (
            tracer().start_as_current_span(
                "registry.apply_command",
                context=extract_context(command_headers.get(command_id)),
                kind=SpanKind.CONSUMER,
                attributes={"tenant_id": command.tenant_id, "command_id": command_id[1]},
            )
            if traced
            else contextlib.nullcontext()
        )
        with span:
            ended = await _apply_one(uow, command, now, topics, changes, traced)
        applied += 1
        terminated += ended
    return applied, terminated


async def _apply_one(
    uow: UnitOfWork,
    command: TerminateSessions,
    now: datetime,
    topics: Topics,
    changes: Changes,
    traced: bool,
) -> int:
    """End the sessions one command targets; return how many."""
    # this span's context, for the revocations' records
    headers = tuple(inject_headers()) if traced else ()
    command_id = str(command.command_id)
    per_session = log.isEnabledFor(logging.DEBUG)  # asked once: no per-session work when off
    query = select(sessions).where(target_clause(command)).order_by(_s.tenant_id, _s.session_id)
    ended = 0
    for state in await lock_states(uow, query):
        # earlier commands of this batch may have ended it already
        state = changes.states.get(state.key, state)
        if state.state != OPEN:
            continue
        event = termination_event(command, state)
        if per_session:
            log.debug(
                "session terminated by command",
                extra={
                    "tenant_id": command.tenant_id,
                    "command_id": command_id,
                    "session_handle": state.session_id,
                },
            )
        apply(state, event)
        changes.states[state.key] = state
        changes.record(event)
        changes.publish_event(topics, event)
        # no copy of the state before: it was open, so the termination is new
        if needs_revocation(None, state, now):
            changes.revoke(topics, state, headers)
        ended += 1
    await record_applied(uow, command, now, ended)
    # in the batch's transaction: a retried batch logs it again
    log.info(
        "termination command applied: %d session(s) ended",
        ended,
        extra={"tenant_id": command.tenant_id, "command_id": command_id},
    )
    return ended
