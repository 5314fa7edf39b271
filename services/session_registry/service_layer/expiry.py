"""The sweeper: expire sessions past `expires_at`, delete rows of sessions never created past
theirs, tombstone revocations past `valid_until`, delete ended sessions past the retention,
and, once an hour, the audit trail of terminations past its own retention.

Each works in bounded batches (one transaction each), so a backlog of many sessions never
becomes one huge transaction; with a `gate`, each batch holds it alone, so the registry's
batches of records (and a termination's revocations) wait for one sweep batch at most, never
for a whole sweep. The `session.expired` events go out through the outbox and come
back through the event log, where folding them changes nothing (same event, same state).
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.handles import record_key
from session_contracts.record_signing import RecordSigner
from session_contracts.topics import Topics
from session_registry.adapters.command_store import (
    AUDIT_TABLES,
    due_tombstones,
    forget_audit_before,
    forget_revocations,
)
from session_registry.adapters.outbox import OutboxRecord, add_to_outbox
from session_registry.adapters.session_store import (
    delete_never_created,
    delete_past_retention,
    due_for_expiry,
)
from session_registry.domain.fold import apply
from session_registry.domain.lifecycle import expiry_event
from session_registry.domain.state import AHEAD_OF_STORE
from session_registry.service_layer.changes import Changes

AUDIT_SWEEP_INTERVAL = timedelta(hours=1)
"""How often the audit trail is swept: its tables have no index led by `requested_at` (the
audit log reads them by tenant), so each sweep reads them whole, and a day's worth of
retention gains nothing from a sweep every few seconds."""


@dataclass
class SweepOutcome:
    """What one sweep did."""

    expired: int = 0
    tombstoned: int = 0
    deleted: int = 0
    """Sessions never created (only activity, a termination or an expiry seen), deleted past
    their `expires_at` with their history."""
    purged: int = 0
    """Ended sessions deleted with their history, the retention past both their end and their
    `expires_at`."""
    audit_purged: int = 0
    """Rows of the audit trail (applied commands, termination requests) deleted past the audit
    retention."""


class Sweeper:
    """Expires sessions, tombstones revocations and deletes what is past its time,
    `batch_size` rows per transaction.

    `ended_retention`: how long an ended session is kept (with its history) past the later of
    its end and its `expires_at`; None keeps them all. `audit_retention`: how long a
    termination's audit rows are kept past its `requested_at` (swept at most once per
    `AUDIT_SWEEP_INTERVAL`); None keeps them all. `activity_grace`: how long past its
    `expires_at` a session is left open before it is expired, for activity still on its way
    (the expiry is final, and dated `expires_at` all the same). `gate`: held around each batch
    (the registry's consumer loop's, so a batch of records and a sweep batch never interleave).
    `signer`: signs each `session.expired` (`session_contracts.record_signing`).
    """

    def __init__(
        self,
        store: Store,
        topics: Topics,
        batch_size: int = 1000,
        *,
        ended_retention: timedelta | None = None,
        audit_retention: timedelta | None = None,
        activity_grace: timedelta = timedelta(0),
        gate: contextlib.AbstractAsyncContextManager[object] | None = None,
        signer: RecordSigner | None = None,
    ) -> None:
        self._store = store
        self._signer = signer
        self._topics = topics
        self._batch_size = batch_size
        self._ended_retention = ended_retention
        self._audit_retention = audit_retention
        self._audit_swept_at: datetime | None = None
        self._activity_grace = activity_grace
        self._gate = gate

    async def sweep(self, now: datetime) -> SweepOutcome:
        """One full pass at `now`."""
        outcome = SweepOutcome()
        outcome.expired = await self._each_batch(lambda uow: self._expire(uow, now))
        outcome.deleted = await self._each_batch(
            lambda uow: delete_never_created(uow, now, self._batch_size)
        )
        outcome.tombstoned = await self._each_batch(lambda uow: self._tombstone(uow, now))
        if self._ended_retention is not None:
            before = now - self._ended_retention
            outcome.purged = await self._each_batch(
                lambda uow: delete_past_retention(uow, before, self._batch_size)
            )
        if self._audit_retention is not None and (
            self._audit_swept_at is None or now >= self._audit_swept_at + AUDIT_SWEEP_INTERVAL
        ):
            outcome.audit_purged = await self._forget_audit(now - self._audit_retention)
            self._audit_swept_at = now
        return outcome

    async def _forget_audit(self, before: datetime) -> int:
        total = 0
        for table in AUDIT_TABLES:
            step = functools.partial(
                forget_audit_before, table=table, before=before, limit=self._batch_size
            )
            total += await self._each_batch(step)
        return total

    async def _each_batch(self, step: Callable[[UnitOfWork], Awaitable[int]]) -> int:
        """Run `step` in a transaction of its own until a batch comes back short; the total."""
        total = 0
        while True:
            async with self._gate or contextlib.nullcontext():
                count = await UnitOfWork(self._store).run(step)
            total += count
            if count < self._batch_size:
                return total

    async def _expire(self, uow: UnitOfWork, now: datetime) -> int:
        changes = Changes()
        due = await due_for_expiry(
            uow,
            now - self._activity_grace,
            self._batch_size,
            hold=self._activity_grace + AHEAD_OF_STORE,
        )
        for state in due:
            event = expiry_event(state)
            apply(state, event)
            changes.states[state.key] = state
            changes.record(event)
            changes.publish_event(self._topics, event, self._signer)
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
