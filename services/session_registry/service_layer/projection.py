"""Applying a batch of decoded events and commands to the read model, in the caller's transaction.

Events are coalesced per session in memory: one SELECT loads the rows the batch touches, the
pure fold merges every event, and one bulk upsert writes the rows that changed.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from read_model.active import EXPIRED, OPEN
from read_model.unit_of_work import UnitOfWork
from session_contracts.escaping import escape_reason
from session_contracts.models import (
    SessionCreated,
    SessionEvent,
    SessionExpired,
    TerminateSessions,
)
from session_contracts.topics import Topics
from session_contracts.tracing import RecordHeaders
from session_registry.adapters.session_store import load_sessions
from session_registry.domain.fold import FOLDS, merge_created, refresh
from session_registry.domain.lifecycle import needs_revocation
from session_registry.domain.state import ACTIVITY_ONLY_SECONDS, SessionState, compute_expires_at
from session_registry.service_layer.changes import Changes
from session_registry.service_layer.terminations import apply_commands

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """What one batch did."""

    events: int = 0
    sessions: int = 0
    commands: int = 0
    terminated: int = 0
    deferred: int = 0
    """Commands by a text filter kept for the resolver (`Projector.defer_searches`)."""
    published: int = 0
    awaiting_creation: int = 0
    """Sessions commands named by id before their creation was read (`Applied`'s)."""
    expiries_not_due: int = 0
    """`session.expired` records folded into an open session before its deadline by the facts
    the registry holds (`Projector._fold`): the registry writes none such."""
    creations_contested: int = 0
    """`session.created` records of sessions created otherwise (`fold.merge_created`)."""
    served_after_expiry: int = 0
    """Expired sessions revoked because activity dated after their expiry was read
    (`lifecycle.served_after_expiry`)."""


class Projector:
    """Folds events into session rows and applies termination commands.

    `publish=False` (a rebuild) writes the read model only: no outbox records, no revocations,
    and commands are not applied (their effects are already in the event log).
    `defer_searches`: a command by a filter that may walk the tenant (`may_walk`) is kept for
    the registry's resolver rather than resolved in the batch (`terminations`).
    """

    def __init__(
        self,
        topics: Topics,
        *,
        publish: bool = True,
        activity_only_seconds: int = ACTIVITY_ONLY_SECONDS,
        defer_searches: bool = False,
    ) -> None:
        self.topics = topics
        self.publish = publish
        self.activity_only_seconds = activity_only_seconds
        self.defer_searches = defer_searches

    async def apply(
        self,
        uow: UnitOfWork,
        events: Sequence[SessionEvent],
        commands: Sequence[TerminateSessions],
        now: datetime,
        command_headers: Mapping[tuple[str, str], RecordHeaders] | None = None,
        command_origins: Mapping[tuple[str, str], tuple[int, int]] | None = None,
        appended: Mapping[int, datetime] | None = None,
    ) -> Outcome:
        """Apply events then commands, in the caller's unit of work; `command_headers`: the
        Kafka headers of each command by (tenant_id, command_id), for its trace;
        `command_origins`: its (partition, offset) on the commands topic (whose registry
        resolves it when deferred, and where a dead letter says it came from); `appended`:
        when the broker appended each `session.created` of `events`, by its index there
        (`fold.apply_created`: the creation appended first wins)."""
        outcome = Outcome(events=len(events))
        changes = Changes()
        if events:
            await self._fold(uow, events, now, changes, outcome, appended or {})
        outcome.sessions = len(changes.states)
        # written before the commands are resolved, so they see this batch's events
        outcome.published = await changes.flush(uow, self.publish)
        if commands and self.publish:
            terminations = Changes()
            applied = await apply_commands(
                uow,
                commands,
                now,
                self.topics,
                terminations,
                command_headers or {},
                defer_searches=self.defer_searches,
                origins=command_origins,
                activity_only_seconds=self.activity_only_seconds,
            )
            outcome.commands, outcome.terminated = applied.commands, applied.terminated
            outcome.deferred = applied.deferred
            outcome.awaiting_creation = applied.awaiting_creation
            outcome.published += await terminations.flush(uow, self.publish)
        return outcome

    async def _fold(
        self,
        uow: UnitOfWork,
        events: Sequence[SessionEvent],
        now: datetime,
        changes: Changes,
        outcome: Outcome,
        appended: Mapping[int, datetime],
    ) -> None:
        """Merge the events into their rows; count in `outcome` the `session.expired` not due
        (`_not_due`) and the creations contested (`fold.merge_created`)."""
        keys = {(event.tenant_id, event.session_id) for event in events}
        not_due: list[SessionExpired] = []
        contested: list[SessionCreated] = []
        served: list[SessionState] = []
        states = await load_sessions(uow, keys, lock=True)
        before = {key: state.copy() for key, state in states.items()}
        merges = FOLDS
        for index, event in enumerate(events):
            key = (event.tenant_id, event.session_id)
            state = states.get(key)
            if state is None:
                state = states[key] = SessionState(tenant_id=key[0], session_id=key[1])
            kind = event.type
            if type(event) is SessionCreated:
                if merge_created(state, event, appended.get(index)):
                    contested.append(event)
            else:
                if type(event) is SessionExpired and _not_due(state, event):
                    not_due.append(event)
                merges[kind](state, event)
            if kind != "session.activity":
                changes.record(event)
        for key, state in states.items():
            refresh(state, self.activity_only_seconds, now)
            previous = before.get(key)
            if previous is not None and previous == state:
                continue
            changes.states[key] = state
            if self.publish and needs_revocation(previous, state, now):
                changes.revoke(self.topics, state)
                if state.state == EXPIRED:
                    served.append(state)
        _warn_first(
            not_due,
            "session.expired record(s) applied to open sessions before their deadline (the "
            "registry writes none such: a producer allowed on the events topic expires "
            "sessions; docs/operations.md#registryexpiriesnotdue)",
        )
        _warn_first(
            contested,
            "session.created record(s) of sessions created otherwise (a login service writes "
            "one a session: a producer allowed on the events topic writes others; the one "
            "the broker appended first is kept; "
            "docs/operations.md#registrycreationscontested)",
        )
        if served:
            first = served[0]
            log.warning(
                "%d expired session(s) served after their expiry (activity dated after it), "
                "revoked as expired; first: tenant %s, session %s, expired %s, active %s "
                "(gateways report activity less often than the registry's grace, dropped "
                "it, or a producer expired the session early: "
                "docs/operations.md#registryexpiredsessionsserved)",
                len(served),
                escape_reason(first.tenant_id),
                escape_reason(first.session_id),
                first.ended_at.isoformat() if first.ended_at else None,
                first.last_activity_at.isoformat() if first.last_activity_at else None,
            )
        outcome.expiries_not_due = len(not_due)
        outcome.creations_contested = len(contested)
        outcome.served_after_expiry = len(served)


def _warn_first(events: Sequence[SessionEvent], what: str) -> None:
    """A warning that `events` are `what`, naming the first (tenant, session, date)."""
    if events:
        first = events[0]
        log.warning(
            "%d %s; first: tenant %s, session %s, dated %s",
            len(events),
            what,
            escape_reason(first.tenant_id),
            escape_reason(first.session_id),
            first.occurred_at.isoformat(),
        )


def _not_due(state: SessionState, event: SessionExpired) -> bool:
    """Whether an expiry ends an open, created session before the deadline the facts folded so
    far give it. The registry writes an expiry only once that deadline is a grace past, and
    folds it back into a row it has expired already: such a record comes from someone else.
    Counted, not refused: the fold gives the same rows in any order of the records, and
    whether the deadline has passed depends on which activity came first."""
    if not state.created or state.state != OPEN:
        return False
    deadline = compute_expires_at(state)
    return deadline is not None and event.occurred_at < deadline
