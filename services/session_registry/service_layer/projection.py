"""Applying a batch of decoded events and commands to the read model, in the caller's transaction.

Events are coalesced per session in memory: one SELECT loads the rows the batch touches, the
pure fold merges every event, and one bulk upsert writes the rows that changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SessionEvent, TerminateSessions
from session_contracts.topics import Topics
from session_contracts.tracing import RecordHeaders
from session_registry.adapters.session_store import load_sessions
from session_registry.domain.fold import FOLDS, refresh
from session_registry.domain.lifecycle import needs_revocation
from session_registry.domain.state import ACTIVITY_ONLY_SECONDS, SessionState
from session_registry.service_layer.changes import Changes
from session_registry.service_layer.terminations import apply_commands


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


class Projector:
    """Folds events into session rows and applies termination commands.

    `publish=False` (a rebuild) writes the read model only: no outbox records, no revocations,
    and commands are not applied (their effects are already in the event log).
    `defer_searches`: a
    command by a filter with a substring condition is kept for the registry's resolver rather
    than resolved in the batch (`terminations`).
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
    ) -> Outcome:
        """Apply events then commands, in the caller's unit of work; `command_headers`: the
        Kafka headers of each command by (tenant_id, command_id), for its trace;
        `command_origins`: its (partition, offset) on the commands topic (whose registry
        resolves it when deferred, and where a dead letter says it came from)."""
        outcome = Outcome(events=len(events))
        changes = Changes()
        if events:
            await self._fold(uow, events, now, changes)
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
        self, uow: UnitOfWork, events: Sequence[SessionEvent], now: datetime, changes: Changes
    ) -> None:
        keys = {(event.tenant_id, event.session_id) for event in events}
        states = await load_sessions(uow, keys, lock=True)
        before = {key: state.copy() for key, state in states.items()}
        merges = FOLDS
        for event in events:
            key = (event.tenant_id, event.session_id)
            state = states.get(key)
            if state is None:
                state = states[key] = SessionState(tenant_id=key[0], session_id=key[1])
            kind = event.type
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
