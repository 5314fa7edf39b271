"""The sweeper: expire sessions past `expires_at`, delete rows of sessions never created past
theirs, tombstone revocations past `valid_until`.

Both work in bounded batches (one transaction each), so a backlog of many sessions never
becomes one huge transaction. The `session.expired` events go out through the outbox and come
back through the event log, where folding them changes nothing (same event, same state).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.handles import record_key
from session_contracts.topics import Topics
from session_registry.adapters.command_store import due_tombstones, forget_revocations
from session_registry.adapters.outbox import OutboxRecord, add_to_outbox
from session_registry.adapters.session_store import delete_never_created, due_for_expiry
from session_registry.domain.fold import apply
from session_registry.domain.lifecycle import expiry_event
from session_registry.service_layer.changes import Changes


@dataclass
class SweepOutcome:
    """What one sweep did."""

    expired: int = 0
    tombstoned: int = 0
    deleted: int = 0
    """Sessions never created (only activity, a termination or an expiry seen), deleted past
    their `expires_at` with their history."""


class Sweeper:
    """Expires sessions and tombstones revocations, `batch_size` rows per transaction."""

    def __init__(self, store: Store, topics: Topics, batch_size: int = 1000) -> None:
        self._store = store
        self._topics = topics
        self._batch_size = batch_size

    async def sweep(self, now: datetime) -> SweepOutcome:
        """One full pass at `now`."""
        outcome = SweepOutcome()
        while True:
            count = await UnitOfWork(self._store).run(lambda uow: self._expire(uow, now))
            outcome.expired += count
            if count < self._batch_size:
                break
        while True:
            count = await UnitOfWork(self._store).run(
                lambda uow: delete_never_created(uow, now, self._batch_size)
            )
            outcome.deleted += count
            if count < self._batch_size:
                break
        while True:
            count = await UnitOfWork(self._store).run(lambda uow: self._tombstone(uow, now))
            outcome.tombstoned += count
            if count < self._batch_size:
                break
        return outcome

    async def _expire(self, uow: UnitOfWork, now: datetime) -> int:
        changes = Changes()
        due = await due_for_expiry(uow, now, self._batch_size)
        for state in due:
            event = expiry_event(state)
            apply(state, event)
            changes.states[state.key] = state
            changes.record(event)
            changes.publish_event(self._topics, event)
        await changes.flush(uow, publish=True)
        return len(due)

    async def _tombstone(self, uow: UnitOfWork, now: datetime) -> int:
        due = await due_tombstones(uow, now, self._batch_size)
        await add_to_outbox(
            uow,
            (
                OutboxRecord(self._topics.revocations, record_key(tenant_id, sid), None)
                for tenant_id, sid in due
            ),
        )
        await forget_revocations(uow.conn, due)
        return len(due)
