"""Broker-free doubles for the registry's hot loop, and snapshots of the read model to compare.

- `FakeLog` is the broker: append-only partitions and the group's committed offsets.
- `FakeConsumer` is exactly the part of `AIOKafkaConsumer` that `ConsumerLoop` uses (`subscribe`,
  `assignment`, `seek`, `seek_to_beginning`, `getmany`, `position`, `commit`, ...), with
  aiokafka's rules where the loop depends on them: a fetch steps over transaction markers,
  `seek` and `commit` refuse partitions not assigned, a rebalance is eager (the listener is
  told the whole assignment is revoked, then given the new one), a newly assigned partition
  nobody seeks starts at the group's committed offset (else the beginning), an exception in
  the listener is logged and swallowed as aiokafka's coordinator does, and between a
  revocation and the new assignment `getmany` returns nothing (it waits).
- `RecordingIngestor` keeps the ids of the events and commands of every committed batch, so a
  test sees what was applied twice or never, although the read model itself would not show it
  (every merge is idempotent).
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import IllegalStateError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.database import open_store, upgrade_schema
from read_model.store import Store
from read_model.tables import (
    applied_commands,
    consumer_positions,
    outbox,
    revocations,
    session_history,
    sessions,
)
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import EVENTS, decode
from session_contracts.kafka_records import CorruptBatch
from session_contracts.models import SessionEvent, TerminateSessions
from session_contracts.topics import Topics
from session_contracts.tracing import RecordHeaders
from session_registry.adapters.dead_letters import DeadLetter
from session_registry.adapters.positions import load_positions
from session_registry.adapters.session_store import state_from_row
from session_registry.domain.fold import fold
from session_registry.domain.state import SessionState
from session_registry.entrypoints.consumer import ConsumerLoop
from session_registry.service_layer.ingest import Decoded, Ingestor, IngestOutcome
from session_registry.service_layer.projection import Outcome, Projector
from session_registry.workload import Workload, records

log = logging.getLogger(__name__)
TOPICS = Topics(prefix="unit.")
CONSUMER = "unit-registry"
NOW = Workload(sessions=1).start
Key = tuple[str, str]


async def migrated_store(folder: Path, name: str = "registry.db") -> Store:
    """A SQLite read model in a file under `folder`, at the current schema."""
    store = open_store(f"sqlite+aiosqlite:///{folder / name}")
    await upgrade_schema(store)
    return store


@dataclass(frozen=True)
class FakeRecord:
    """A polled record: what `ingest.Record` asks of aiokafka's ConsumerRecord."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()
    timestamp: int = 0
    timestamp_type: int = 0
    """CreateTime: a record dated by its producer (here, by nobody)."""
    control: bool = False
    """A transaction marker: it takes an offset, and the consumer steps over it, handing
    nothing over (`FakeLog.append_marker`)."""


class FakeLog:
    """The broker: append-only partitions and the consumer group's committed offsets."""

    def __init__(self) -> None:
        self.partitions: dict[TopicPartition, list[FakeRecord]] = defaultdict(list)
        self.committed: dict[TopicPartition, int] = {}
        self.starts: dict[TopicPartition, int] = {}
        """Where a partition's records start: those before were deleted by retention."""
        self.partition_counts: dict[str, int] = {TOPICS.events: 3, TOPICS.commands: 1}
        """The partitions of each topic, as the cluster's metadata has them."""

    def append(
        self,
        topic: str,
        partition: int,
        value: bytes | None,
        key: bytes | None = None,
        headers: tuple[tuple[str, bytes], ...] = (),
    ) -> FakeRecord:
        """Append one record; return it with its offset."""
        tp = TopicPartition(topic, partition)
        record = FakeRecord(topic, partition, len(self.partitions[tp]), key, value, headers)
        self.partitions[tp].append(record)
        return record

    def append_marker(self, tp: TopicPartition) -> None:
        """Append a transaction marker (a control batch of one record): no record to apply."""
        offset = len(self.partitions[tp])
        self.partitions[tp].append(
            FakeRecord(tp.topic, tp.partition, offset, None, None, control=True)
        )

    def extend_events(self, workload: Workload, partitions: int = 2) -> list[FakeRecord]:
        """A workload's records on the events topic, spread over partitions by key."""
        return [
            self.append(TOPICS.events, zlib.crc32(key) % partitions, value, key)
            for key, value in records(workload)
        ]

    def read(self, tp: TopicPartition, offset: int, limit: int) -> list[FakeRecord]:
        """Up to `limit` records of a partition from `offset`."""
        return self.partitions[tp][offset : offset + limit]

    def ends(self) -> dict[tuple[str, int], int]:
        """The next offset of every partition, as positions are keyed."""
        return {(tp.topic, tp.partition): len(rs) for tp, rs in self.partitions.items() if rs}

    def all_records(self) -> list[FakeRecord]:
        """Every record, partition by partition (markers are none)."""
        return [r for tp in sorted(self.partitions) for r in self.partitions[tp] if not r.control]


class FakeConsumer:
    """The aiokafka consumer surface `ConsumerLoop` uses, scripted by the test (see the module)."""

    def __init__(self, log_: FakeLog, *, name: str = "consumer") -> None:
        self.log = log_
        self.name = name
        self.listener: ConsumerRebalanceListener | None = None
        self.topics: list[str] = []
        self._assigned: set[TopicPartition] = set()
        self.positions: dict[TopicPartition, int] = {}
        self.seeks: list[tuple[TopicPartition, int | None]] = []  # None: to the beginning
        self.commits: list[dict[TopicPartition, int]] = []
        self.refused: list[str] = []  # what aiokafka would have raised
        self.listener_errors: list[BaseException] = []
        self.polls = 0
        self.open_polls = 0
        self.revokes_started = 0
        self._assignment_done = asyncio.Event()  # clear between a revocation and the assignment
        self._assignment_done.set()
        self.batches: list[dict[TopicPartition, list[FakeRecord]]] = []
        self.before_poll: dict[int, Callable[[], Awaitable[None]]] = {}
        """Poll number (from 1) -> what happens before that poll fetches (e.g. a rebalance)."""
        self.after_revoke: Callable[[], Awaitable[None]] | None = None
        """Runs once the listener's on_partitions_revoked has returned."""
        self.damaged: dict[TopicPartition, int] = {}
        """Partition -> the offset of a one-record batch whose CRC fails (delete to mend)."""
        self.dropped: list[tuple[TopicPartition, int]] = []
        """Records taken from a fetch that then met a damaged batch, dropped with the error."""
        self.damaged_met = 0
        """Fetches that met a damaged batch (raised `CorruptBatch`)."""
        self._paused: set[TopicPartition] = set()

    def as_aiokafka(self) -> AIOKafkaConsumer:
        """This fake, typed as what ConsumerLoop is declared to take."""
        return cast(AIOKafkaConsumer, self)

    # --- the aiokafka surface -------------------------------------------------------------

    def subscribe(
        self, topics: Sequence[str] = (), listener: ConsumerRebalanceListener | None = None
    ) -> None:
        """Remember the topics and the rebalance listener."""
        self.topics = list(topics)
        self.listener = listener

    def assignment(self) -> set[TopicPartition]:
        """The partitions currently assigned."""
        return set(self._assigned)

    def seek(self, partition: TopicPartition, offset: int) -> None:
        """Set the next fetch offset (aiokafka: IllegalStateError if not assigned)."""
        if partition not in self._assigned:
            self.refused.append(f"seek {partition} not assigned")
            raise IllegalStateError(f"No current assignment for partition {partition}")
        self.positions[partition] = offset
        self.seeks.append((partition, offset))

    async def seek_to_beginning(self, *partitions: TopicPartition) -> None:
        """Fetch these partitions from their first record."""
        for tp in partitions:
            if tp not in self._assigned:
                self.refused.append(f"seek_to_beginning {tp} not assigned")
                raise IllegalStateError(f"No current assignment for partition {tp}")
            self.positions[tp] = 0
            self.seeks.append((tp, None))

    async def getmany(
        self, *partitions: TopicPartition, timeout_ms: int = 0, max_records: int | None = None
    ) -> dict[TopicPartition, list[FakeRecord]]:
        """Up to `max_records` from the assigned partitions; waits up to `timeout_ms` for data."""
        self.polls += 1
        self.open_polls += 1
        try:
            hook = self.before_poll.pop(self.polls, None)
            if hook is not None:
                await hook()
            deadline = asyncio.get_running_loop().time() + timeout_ms / 1000
            while True:
                # aiokafka returns nothing that may no longer be this member's
                await self._assignment_done.wait()
                batch = self._take(max_records or 500)
                if batch or asyncio.get_running_loop().time() >= deadline:
                    if batch:
                        self.batches.append(batch)
                    return batch
                await asyncio.sleep(0.002)
        finally:
            self.open_polls -= 1

    def pause(self, *partitions: TopicPartition) -> None:
        """Fetch nothing more of these until resumed (aiokafka: refused if not assigned)."""
        for tp in partitions:
            if tp not in self._assigned:
                self.refused.append(f"pause {tp} not assigned")
                raise IllegalStateError(f"No current assignment for partition {tp}")
        self._paused.update(partitions)

    def resume(self, *partitions: TopicPartition) -> None:
        """Fetch these again."""
        self._paused.difference_update(partitions)

    def paused(self) -> set[TopicPartition]:
        """The partitions paused (forgotten by a new assignment, as aiokafka's are)."""
        return set(self._paused)

    def highwater(self, partition: TopicPartition) -> int | None:
        """The partition's end as the last fetch saw it (None: never fetched or sought)."""
        if partition not in self.positions:
            return None
        return len(self.log.partitions[partition])

    async def position(self, partition: TopicPartition) -> int:
        """The offset of the next record to hand over (aiokafka: refused if not assigned)."""
        if partition not in self._assigned:
            self.refused.append(f"position {partition} not assigned")
            raise IllegalStateError(f"Partition {partition} is not assigned")
        return self.positions.get(partition, self.log.committed.get(partition, 0))

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        """The topic's partitions in the cluster's metadata (None: not known)."""
        count = self.log.partition_counts.get(topic)
        return None if count is None else set(range(count))

    async def end_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        """Each partition's next offset, assigned or not."""
        return {tp: len(self.log.partitions[tp]) for tp in partitions}

    async def beginning_offsets(
        self, partitions: list[TopicPartition]
    ) -> dict[TopicPartition, int]:
        """Each partition's first offset still held, assigned or not."""
        return {tp: self.log.starts.get(tp, 0) for tp in partitions}

    async def commit(self, offsets: Mapping[TopicPartition, int]) -> None:
        """Commit the group's offsets (aiokafka refuses partitions not assigned)."""
        for tp in offsets:
            if tp not in self._assigned:
                self.refused.append(f"commit {tp} not assigned")
                raise IllegalStateError(f"commit of {tp}, not assigned")
        self.commits.append(dict(offsets))
        self.log.committed.update(offsets)

    # --- the test's controls ----------------------------------------------------------------

    def _take(self, limit: int) -> dict[TopicPartition, list[FakeRecord]]:
        """Up to `limit` records, shared between the assigned partitions as a fetch shares them."""
        batch: dict[TopicPartition, list[FakeRecord]] = {}
        assigned = sorted(self._assigned - self._paused)
        for tp in assigned:
            if tp not in self.positions:  # nobody sought it: the group's offset, else earliest
                self.positions[tp] = self.log.committed.get(tp, 0)
            # a position before the records still held resets to the earliest
            self.positions[tp] = max(self.positions[tp], self.log.starts.get(tp, 0))
        share = max(1, limit // max(1, len(assigned)))
        for step in (share, limit):  # a fair share each, then whatever room is left
            for tp in assigned:
                room = min(step, limit)
                if room <= 0:
                    break
                damaged = self.damaged.get(tp)
                if damaged is not None and self.positions[tp] == damaged:
                    # aiokafka: what it took of the other partitions is dropped with the error,
                    # their positions moved past it (`kafka_records.TolerantPartitionRecords`)
                    self.dropped += [(t, r.offset) for t, rs in batch.items() for r in rs]
                    self.damaged_met += 1
                    raise CorruptBatch(tp, damaged, damaged, damaged)
                if damaged is not None and self.positions[tp] < damaged:
                    room = min(room, damaged - self.positions[tp])  # the records before it
                read = self.log.read(tp, self.positions[tp], room)
                self.positions[tp] += len(read)  # past markers too, as aiokafka's fetcher
                taken = [r for r in read if not r.control]
                if taken:
                    batch.setdefault(tp, []).extend(taken)
                    limit -= len(taken)
        return batch

    async def revoke_all(self) -> None:
        """The first half of an eager rebalance: the whole assignment is revoked."""
        assert self.listener is not None, "subscribe first"
        self.revokes_started += 1
        self._assignment_done.clear()
        revoked = set(self._assigned)
        await self._call(self.listener.on_partitions_revoked(revoked))
        if self.after_revoke is not None:
            await self.after_revoke()

    async def assign(self, assigned: Iterable[TopicPartition]) -> None:
        """The second half: a new assignment, every fetch position forgotten, then the listener."""
        assert self.listener is not None, "subscribe first"
        self._assigned = set(assigned)
        self.positions = {}
        self._paused = set()  # aiokafka's new assignment starts every partition unpaused
        self._assignment_done.set()
        await self._call(self.listener.on_partitions_assigned(set(self._assigned)))

    async def rebalance(self, assigned: Iterable[TopicPartition]) -> None:
        """An eager rebalance of this consumer alone."""
        await self.revoke_all()
        await self.assign(assigned)

    async def _call(self, callback: Awaitable[None]) -> None:
        try:
            await callback
        except Exception as exc:  # aiokafka's coordinator logs a failing listener and goes on
            log.warning("%s: listener failed: %r", self.name, exc)
            self.listener_errors.append(exc)


async def group_rebalance(assignments: Mapping[FakeConsumer, Iterable[TopicPartition]]) -> None:
    """One eager rebalance of a group: every member revokes, then every member is assigned."""
    await asyncio.gather(*(c.revoke_all() for c in assignments))
    await asyncio.gather(*(c.assign(tps) for c, tps in assignments.items()))


def partitions(topic: str, *numbers: int) -> set[TopicPartition]:
    """TopicPartitions of one topic."""
    return {TopicPartition(topic, n) for n in numbers}


class RecordingProjector(Projector):
    """A Projector that remembers what each call applied, and can fail or pause on cue."""

    def __init__(self, topics: Topics = TOPICS) -> None:
        super().__init__(topics)
        self.calls = 0
        self.last: list[str] = []
        self.fail_on: dict[int, BaseException] = {}
        """Call number (from 1) -> raised after the call wrote its rows (rolled back)."""
        self.during: dict[int, Callable[[], Awaitable[None]]] = {}
        """Call number (from 1) -> awaited after the call wrote its rows, before the commit."""

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
        """Apply, remember the ids, then do what the test scripted for this call."""
        self.calls += 1
        outcome = await super().apply(
            uow, events, commands, now, command_headers, command_origins, appended
        )
        self.last = [str(e.event_id) for e in events] + [str(c.command_id) for c in commands]
        hook = self.during.pop(self.calls, None)
        if hook is not None:
            await hook()
        failure = self.fail_on.pop(self.calls, None)
        if failure is not None:
            raise failure
        return outcome


class RecordingDeadLetters:
    """The dead-letter port, keeping what it was sent (and failing on cue)."""

    def __init__(self) -> None:
        self.sent: list[DeadLetter] = []
        self.fail_with: BaseException | None = None

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Keep the letters, or raise what the test set."""
        if self.fail_with is not None:
            raise self.fail_with
        self.sent.extend(letters)


class RecordingIngestor(Ingestor):
    """An Ingestor that keeps the ids applied by each committed batch (`applied`)."""

    def __init__(
        self,
        store: Store,
        *,
        consumer: str = CONSUMER,
        clock: Callable[[], datetime] = lambda: NOW,
        hold_after: int | None = None,
    ) -> None:
        self.projector = RecordingProjector()
        self.dead_letters = RecordingDeadLetters()
        super().__init__(store, self.projector, consumer, self.dead_letters, clock)
        self.applied: list[str] = []
        self.outcomes: list[IngestOutcome] = []
        self._hold_after = hold_after

    async def apply(self, decoded: dict[tuple[str, int], Decoded]) -> IngestOutcome:
        """Apply; once committed, keep what the committed attempt applied. With `hold_after`,
        the batches after that many wait, before touching the database, until cancelled: a
        stop then never lands between a commit and its outcome being kept."""
        if self._hold_after is not None and len(self.outcomes) >= self._hold_after:
            await asyncio.Event().wait()
        outcome = await super().apply(decoded)
        if decoded:
            self.applied.extend(self.projector.last)
        self.outcomes.append(outcome)
        return outcome


# --- what the read model holds, and what it should hold -------------------------------------


def expected_sessions(values: Iterable[bytes | None]) -> dict[Key, SessionState]:
    """The pure fold of these event records, per session (what any batching must give)."""
    by_session: dict[Key, list[SessionEvent]] = defaultdict(list)
    for value in values:
        event = decode(EVENTS, value)
        by_session[(event.tenant_id, event.session_id)].append(event)
    folded = {key: fold(events) for key, events in by_session.items()}
    return {key: state for key, state in folded.items() if state is not None}


def event_ids(values: Iterable[bytes | None]) -> Counter[str]:
    """How often each event id occurs among these records."""
    return Counter(str(decode(EVENTS, value).event_id) for value in values)


async def session_states(engine: AsyncEngine) -> dict[Key, SessionState]:
    """Every `sessions` row, as states."""
    async with engine.connect() as conn:
        result = await conn.execute(select(sessions))
        return {(r.tenant_id, r.session_id): state_from_row(r) for r in result}


async def stored_positions(
    engine: AsyncEngine, consumer: str = CONSUMER
) -> dict[tuple[str, int], int]:
    """The positions stored for `consumer`."""
    async with engine.connect() as conn:
        return await load_positions(conn, consumer)


async def snapshot(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table a batch or a sweep writes, row by row (ordered), for before/after equality."""
    tables = (sessions, session_history, consumer_positions, outbox, revocations, applied_commands)
    found: dict[str, list[tuple[Any, ...]]] = {}
    async with engine.connect() as conn:
        for table in tables:
            rows = await conn.execute(select(table).order_by(*table.primary_key.columns))
            found[table.name] = [tuple(row) for row in rows]
    return found


async def wait_for(
    condition: Callable[[], Awaitable[bool]] | Callable[[], bool], within: float = 10.0
) -> None:
    """Wait until `condition()` holds (it may be async), failing after `within` seconds."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = condition()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not reached within {within} s")
        await asyncio.sleep(0.005)


@dataclass
class Run:
    """A ConsumerLoop task and what it was built from."""

    loop: ConsumerLoop
    consumer: FakeConsumer
    ingestor: RecordingIngestor
    task: asyncio.Task[None]
    settled: list[IngestOutcome] = field(default_factory=list)
    """The outcomes handed to `after_batch` (batches committed and settled)."""

    async def stop(self) -> None:
        """Cancel the loop as Registry.stop does; a loop that died re-raises its error here."""
        if not self.task.done():
            self.task.cancel()
            await asyncio.wait({self.task})  # itself cancellable: a hung stop stays visible
        if not self.task.cancelled():
            self.task.result()


async def start_loop(
    store: Store,
    consumer: FakeConsumer,
    assigned: Iterable[TopicPartition] | None,
    *,
    max_records: int = 25,
    poll_timeout_ms: int = 20,
    relay: Callable[[IngestOutcome], Awaitable[None]] | None = None,
    hold_after: int | None = None,
    held_retry_seconds: float = 30.0,
) -> Run:
    """A ConsumerLoop over the fake consumer, subscribed, first assigned `assigned`, running.

    `relay`: awaited by `after_batch` first (as the registry's outbox relay would be);
    `hold_after`: the ingestor's (`RecordingIngestor`)."""
    ingestor = RecordingIngestor(store, hold_after=hold_after)
    settled: list[IngestOutcome] = []

    async def after_batch(outcome: IngestOutcome) -> None:
        if relay is not None:
            await relay(outcome)
        settled.append(outcome)

    loop = ConsumerLoop(
        consumer.as_aiokafka(),
        [TOPICS.events, TOPICS.commands],
        store.engine,
        ingestor,
        CONSUMER,
        max_records=max_records,
        poll_timeout_ms=poll_timeout_ms,
        held_retry_seconds=held_retry_seconds,
        after_batch=after_batch,
    )
    loop.subscribe()
    if assigned is not None:
        await consumer.rebalance(assigned)
    task = asyncio.create_task(loop.run(), name=f"loop-{consumer.name}")
    return Run(loop, consumer, ingestor, task, settled)
