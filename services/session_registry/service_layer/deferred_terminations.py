"""Terminations by a text filter (or `policy_outdated`), resolved beside the consumer loop.

Why: the registry resolved a command by filter in the transaction of the batch it arrived in,
and every tenant's events and revocations wait behind that transaction. A filter with a
substring condition (`read_model.session_query.is_search`) that no index answers (`~`: nothing
matches) reads the tenant's whole listed set there: 530-590 ms at 400,000 sessions in a tenant
on the bench's database, seconds at millions. One tenant's admin sending such terminations in
a loop held up revocations for every tenant. A filter with `policy_outdated` (either value)
compares every listed session of the tenant with its current settings, which no index holds:
the same walk, whatever the tenant's sessions (found by a review, 2026-12-06: 164 ms of the
batch's transaction for one command at 60,000 sessions, ten commands 1.1 s, ending nothing).
Both are `read_model.session_query.may_walk`.

How:
- The batch that takes such a command from the topic keeps it in `deferred_terminations`
  (`terminations.apply_commands(defer_searches=True)`), with its partition of the commands
  topic, and moves on. Once the batch has committed, the registry wakes the resolver.
- The resolver takes the kept commands of the partitions assigned to this registry (and those
  kept with none), each tenant's oldest first, the tenants taking turns a chunk each. For
  each chunk it reads the ids of the next `chunk` targets (`terminations.resolve_chunk`)
  on a connection of its own: a read in no
  write transaction, holding no lock and not the consumer loop's gate, so the loop's batches
  go on meanwhile (on PostgreSQL the read uses another core; on SQLite, WAL lets it read while
  the loop writes).
- It then ends that chunk (`terminations.end_resolved`: those still open) in a transaction
  of its own that holds the loop's gate, as the sweeper's batches do: a batch of records
  waits for one chunk's writes at most, never for a read. The transaction
  locks the command's row first (two registries, during a rebalance, take turns), notes how
  far the resolution got, and with the last chunk records the command applied and drops the
  row.
- A crash or a failure anywhere: the row says where to go on. A session ended already is no
  longer open, and a termination event's id is derived from the command and the session,
  so nothing is ended twice and nothing is lost.
- A command whose resolution fails by itself (`ingest.caused_by_a_record`: a value the
  database refuses, a Python error it provokes) would fail every pass and hold up every
  command behind it: it goes to the dead-letter topic with the reason and its position on the
  commands topic, and its row is dropped (what earlier chunks ended stays ended; redriven, it
  ends the rest). Its status then says `failed`, with what its chunks ended
  (`failed_commands`). Any other failure (the database away) ends the pass; the next one retries.

What it changes for the admin: such a termination is applied a read after its batch (a few
milliseconds for a text the indexes answer) rather than within it; the filter is tested when
the targets are read, and a session it matched then is ended even if its activity changed it
before its chunk was ended. Commands by ids, and filters that cannot walk (their reads go by
indexes to what they end), are applied in the batch as before.
"""

from __future__ import annotations

import collections
import contextlib
import functools
import logging
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field
from datetime import datetime

from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import TerminateSessions
from session_contracts.topics import Topics
from session_contracts.tracing import inject_headers, tracing_on
from session_registry.adapters.command_store import (
    Deferred,
    advance_deferred,
    deferred_commands,
    forget_deferred,
    lock_deferred,
    record_applied,
)
from session_registry.adapters.dead_letters import DeadLetter, DeadLetterSink
from session_registry.service_layer.ingest import caused_by_a_record, record_given_up, refusal
from session_registry.service_layer.terminations import (
    FILTER_CHUNK,
    command_span,
    end_resolved,
    resolve_chunk,
)

log = logging.getLogger(__name__)


@dataclass
class ResolveOutcome:
    """What one pass over the deferred commands did."""

    commands: int = 0
    """Commands applied (their last chunk ended)."""
    dead_letter_reasons: list[str] = field(default_factory=list)
    """Why each command given up was (its resolution failed by itself; sent to the dead-letter
    topic)."""
    terminated: int = 0
    """Sessions ended, by every chunk of the pass."""


@dataclass
class _Progress:
    """A deferred command being resolved, and the last session id its chunks went to."""

    deferred: Deferred
    after: str | None


class DeferredTerminations:
    """Resolves and applies the deferred terminations of the partitions this registry owns.

    `owned`: the partitions of the commands topic assigned to this registry now (None: all).
    `after_chunk`: run after each chunk's transaction committed (the outbox relay). `gate`:
    held around each chunk's writes (the consumer loop's). `dead_letters`: where a command
    whose resolution fails by itself goes (None: its failure ends the pass, as any other).
    `given_up`: called once a command is recorded failed, as it commits (a metric: counted
    there, not from the pass's outcome, which a later failure of the pass discards).
    `dead_lettered`: called with the reason once a command's dead letter is sent (a metric,
    counted there for the same reason).
    """

    def __init__(
        self,
        store: Store,
        topics: Topics,
        *,
        clock: Callable[[], datetime],
        owned: Callable[[], Collection[int] | None] = lambda: None,
        after_chunk: Callable[[], Awaitable[None]] | None = None,
        gate: contextlib.AbstractAsyncContextManager[object] | None = None,
        chunk: int = FILTER_CHUNK,
        dead_letters: DeadLetterSink | None = None,
        given_up: Callable[[], None] | None = None,
        dead_lettered: Callable[[str], None] | None = None,
    ) -> None:
        self._store = store
        self._topics = topics
        self._clock = clock
        self._owned = owned
        self._after_chunk = after_chunk
        self._gate = gate
        self._chunk = chunk
        self._dead_letters = dead_letters
        self._given_up = given_up
        self._dead_lettered = dead_lettered

    async def resolve_all(self) -> ResolveOutcome:
        """Apply every deferred command this registry owns.

        Tenants take turns, a chunk each (a read, then its writes): each tenant's commands go
        oldest first, so one tenant's many or slow commands (a walk of millions of sessions
        per read) delay another tenant's by one chunk of each per turn, not by all of them.
        """
        async with self._store.engine.connect() as conn:
            waiting = await deferred_commands(conn, self._owned())
        queues: dict[str, collections.deque[_Progress]] = {}
        for deferred in waiting:
            queue = queues.setdefault(deferred.command.tenant_id, collections.deque())
            queue.append(_Progress(deferred, deferred.ended_after))
        outcome = ResolveOutcome()
        while queues:
            for tenant, queue in list(queues.items()):
                progress = queue[0]
                try:
                    done = await self._step(progress, outcome)
                except Exception as exc:
                    if self._dead_letters is None or not caused_by_a_record(exc):
                        raise
                    reason = await self._give_up(progress.deferred, exc)
                    outcome.dead_letter_reasons.append(reason)
                    done = True
                if done:
                    queue.popleft()
                    if not queue:
                        del queues[tenant]
        return outcome

    async def _give_up(self, deferred: Deferred, exc: Exception) -> str:
        """Send a command whose resolution fails by itself to the dead-letter topic, then record
        it failed with what its chunks ended and drop its row (durable on the topic first: a
        failure in between sends it again)."""
        assert self._dead_letters is not None
        command = deferred.command
        reason = refusal(exc)
        log.warning(
            "termination command by a text filter could not be resolved, dead-lettered: %s",
            reason,
            extra={"tenant_id": command.tenant_id, "command_id": deferred.key[1]},
            exc_info=exc,
        )
        letter = DeadLetter(
            topic=self._topics.commands,
            partition=-1 if deferred.partition is None else deferred.partition,
            offset=-1 if deferred.offset is None else deferred.offset,
            key=record_key(*deferred.key),
            value=encode(command),
            headers=(),
            reason=reason,
        )
        await self._dead_letters.send([letter])
        if self._dead_lettered is not None:
            self._dead_lettered(reason)

        async def forget(uow: UnitOfWork) -> bool:
            kept = await lock_deferred(uow, deferred.key)
            if kept is None:
                return False  # applied by another registry meanwhile
            # failed, with what its chunks ended (the row's count: another registry's chunks
            # included)
            await record_given_up(uow, kept.command, self._clock(), kept.terminated)
            await forget_deferred(uow, deferred.key)
            return True

        async with self._gate or contextlib.nullcontext():
            failed = await UnitOfWork(self._store).run(forget)
        if failed and self._given_up is not None:
            self._given_up()
        return reason

    def _mine(self, deferred: Deferred) -> bool:
        owned = self._owned()
        return owned is None or deferred.partition is None or deferred.partition in owned

    async def _step(self, progress: _Progress, outcome: ResolveOutcome) -> bool:
        """Read and end one command's next chunk; whether the command is done here (applied,
        applied by another registry, or its partition moved to one)."""
        deferred = progress.deferred
        if not self._mine(deferred):  # a rebalance moved its partition away meanwhile
            return True
        command = deferred.command
        async with self._store.engine.connect() as conn:
            ids = await resolve_chunk(conn, self._store, command, progress.after, self._chunk)
        last = len(ids) < self._chunk
        step = functools.partial(self._end, key=deferred.key, command=command, ids=ids, last=last)
        async with self._gate or contextlib.nullcontext():
            ended = await UnitOfWork(self._store).run(step)
        if self._after_chunk is not None:
            await self._after_chunk()
        if ended is None:
            return True  # applied by another registry
        outcome.terminated += ended
        if last:
            outcome.commands += 1
            return True
        progress.after = ids[-1]
        return False

    async def _end(
        self,
        uow: UnitOfWork,
        key: tuple[str, str],
        command: TerminateSessions,
        ids: list[str],
        last: bool,
    ) -> int | None:
        """End one chunk; how many sessions it ended, or None if the command was applied."""
        kept = await lock_deferred(uow, key)
        if kept is None:
            return None
        now = self._clock()
        traced = tracing_on()
        with command_span(key, kept.headers, traced, deferred=True):
            headers = tuple(inject_headers()) if traced else ()
            ended = await end_resolved(uow, command, ids, now, self._topics, headers)
        total = kept.terminated + ended
        if not last:
            await advance_deferred(uow, key, ids[-1], total)
            return ended
        await record_applied(uow, command, now, total)
        await forget_deferred(uow, key)
        # in the chunk's transaction: a retried chunk logs it again
        log.info(
            "termination command applied (deferred): %d session(s) ended",
            total,
            extra={"tenant_id": command.tenant_id, "command_id": key[1]},
        )
        return ended
