"""The registry's consumer loop: a plain aiokafka consumer over the events and commands topics.

Why not a FastStream subscriber: the registry must seek every newly assigned partition to the
position stored in its own database (the truth, written with the rows), and it applies records
in large batches, one transaction each. Both need the consumer itself (`seek` in a rebalance
listener, `getmany`), which a per-message subscriber hides.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import KafkaError
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from session_contracts.escaping import escape_reason
from session_contracts.kafka_records import CorruptBatch
from session_registry.adapters.positions import load_past_end, load_positions, note_past_end
from session_registry.metrics import RegistryMetrics
from session_registry.service_layer.ingest import (
    Decoded,
    Ingestor,
    IngestOutcome,
    TopicPartitionKey,
)

log = logging.getLogger(__name__)
RETRYABLE = (OSError, KafkaError, DBAPIError)
"""A batch failing with these (database or broker away) is retried; anything else is a bug."""
RETRY_FIRST_SECONDS = 1.0
RETRY_MAX_SECONDS = 10.0
ASKS_KEPT = 32
"""Moments asked whose ends are not reached yet, kept at most: when there are more, every
other one is dropped, so a registry steadily behind still reaches one now and then."""
STARTS_ASKED_EVERY_SECONDS = 60.0
"""How often partitions behind their ends have their first offsets asked again (`ask_ends`)."""


@dataclass
class _Ask:
    """A moment asked, with every partition's end then, and the last partition found short of
    its end (checked first: one comparison per batch while the group stays behind)."""

    asked_at: datetime
    ends: dict[TopicPartitionKey, int]
    blocker: TopicPartitionKey | None = None


@dataclass(frozen=True)
class Blocker:
    """The partition the sweeps wait for: applied up to `applied` of `end` (`blocking`)."""

    topic: str
    partition: int
    applied: int
    end: int


class SeekToStoredPositions(ConsumerRebalanceListener):  # type: ignore[misc]
    """On assignment, seek each partition to its stored position (or the beginning)."""

    def __init__(self, loop: ConsumerLoop) -> None:
        self._loop = loop

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        """Wait for the batch in flight to commit before the partitions move."""
        self._loop.positioning_started()
        # let a batch in flight commit first, so the next owner finds its position stored
        async with self._loop.gate:
            log.info("partitions revoked: %s", sorted(revoked))

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        """Seek to the stored positions; records fetched before that are not applied."""
        self._loop.positioning_started()  # begun at the revocation already (aiokafka's order)
        # nothing is applied until the positions are known, however long that takes
        await self._loop.seek_to_stored_when_readable(assigned)
        self._loop.positioning_ended()
        if self._loop.on_assigned is not None:
            self._loop.on_assigned()
        # set on an empty assignment too: a replica beyond the partitions has joined and has
        # nothing to catch up on, and must not hold a rollout waiting for its readiness
        self._loop.assigned.set()
        log.info("partitions assigned: %s", sorted(assigned))


class ConsumerLoop:
    """Polls batches with `getmany`, ingests each in one transaction, then commits offsets."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        topics: list[str],
        engine: AsyncEngine,
        ingestor: Ingestor,
        name: str,
        *,
        max_records: int,
        poll_timeout_ms: int,
        held_retry_seconds: float = 30.0,
        after_batch: Callable[[IngestOutcome], Awaitable[None]] | None = None,
        metrics: RegistryMetrics | None = None,
        on_assigned: Callable[[], None] | None = None,
    ) -> None:
        self.consumer = consumer
        self.gate = asyncio.Lock()
        self.assigned = asyncio.Event()  # set once the group first gave an assignment (any)
        self._topics = topics
        self._engine = engine
        self._ingestor = ingestor
        self._name = name
        self._max_records = max_records
        self._poll_timeout_ms = poll_timeout_ms
        self._held_retry_seconds = held_retry_seconds
        self.held: dict[TopicPartition, CorruptBatch] = {}
        """Partitions held at a batch whose CRC fails, until read past it (`_hold`)."""
        self._retries: dict[TopicPartition, asyncio.TimerHandle] = {}
        """Each held partition's next fetch (`_retry_held`): one at a time."""
        self._after_batch = after_batch
        self._metrics = metrics
        self.past_end: dict[TopicPartitionKey, tuple[int, int]] = {}
        """Partitions whose stored position was found past their end, with the end then asked
        (`ask_ends`): their records up to that position were skipped as applied already. Kept
        in the database (`positions_past_end`) until `positions set` repairs the partition:
        a restart no longer forgets them (it did until stop 70)."""
        self._past_end_loaded = False
        if metrics is not None:
            metrics.partitions_held.set_function(lambda: len(self.held))
            metrics.positions_past_end.set_function(lambda: len(self.past_end))
        self.on_assigned = on_assigned
        """Called once a rebalance's partitions are at their stored positions."""
        self.alive_at = time.monotonic()
        """When the loop last went round (a poll, a settled batch, a retry): liveness."""
        self.positions: dict[TopicPartitionKey, int] = {}
        """The stored position of each partition as this process last read or wrote it."""
        self._asked_ends: dict[TopicPartitionKey, int] = {}
        """Each partition's end as last asked of the broker (`ask_ends`): every partition of
        the topics, assigned to this process or not."""
        self._asks: list[_Ask] = []
        """Moments asked, each with every partition's end then, until the positions reach
        them (`caught_up_at`)."""
        self._applied_by_group: dict[TopicPartitionKey, int] = {}
        """Every partition's position as the database held it at the last `ask_ends` (where
        the partition's records start, if later): what the group's instances have applied."""
        self._starts: dict[TopicPartitionKey, int] = {}
        """Where partitions behind their ends start, as last asked (records before were
        deleted by retention)."""
        self._starts_asked = float("-inf")
        """When `_starts` was asked (monotonic)."""
        self.caught_up_at: datetime | None = None
        """A moment up to which every record of every partition of the topics is applied, by
        this process or another instance of its group: the last `ask_ends` whose ends the
        positions have reached (None: not yet). The sweeper expires nothing later than this."""
        self._publishing: asyncio.Task[None] | None = None
        """The outbox relay of the last settled batch (`_relay`)."""
        self._committing: asyncio.Task[None] | None = None
        """The Kafka offset commit of the last settled batch (`_commit`)."""
        self._told_empty: set[TopicPartitionKey] = set()
        """Partitions whose offsets without records were stepped over and logged as a warning
        (once each; `_move_past_empty`)."""
        self._positionings = 0
        """Counts every start and end of a rebalance's positioning: a fetch that saw it change
        overlapped one (`run`)."""
        self._positioned = asyncio.Event()
        """Clear while a rebalance's partitions are being sought to their stored positions."""
        self._positioned.set()

    def lag(self) -> dict[TopicPartitionKey, int]:
        """Per assigned partition whose end is known: records not applied yet.

        The end is the later of the high watermark of the consumer's last fetch and the end
        last asked of the broker (`ask_ends`); no request is made here, so this is cheap
        enough for every scrape and probe. The fetches alone under-report a stuck loop: the
        consumer fetches no further on a partition whose fetched records wait to be taken, so
        while the loop waits on a batch the high watermark stands still as records arrive.
        """
        lags: dict[TopicPartitionKey, int] = {}
        for tp in self.consumer.assignment():
            end = self._end(tp)
            if end is None:
                continue  # nothing fetched from it or asked of it yet
            key = (tp.topic, tp.partition)
            lags[key] = max(0, end - self.positions.get(key, 0))
        return lags

    def unknown_lag(self) -> int:
        """Assigned partitions whose end is not known yet (nothing fetched or asked)."""
        return sum(1 for tp in self.consumer.assignment() if self._end(tp) is None)

    def _end(self, tp: TopicPartition) -> int | None:
        fetched: int | None = self.consumer.highwater(tp)
        asked = self._asked_ends.get((tp.topic, tp.partition))
        return max((end for end in (fetched, asked) if end is not None), default=None)

    async def ask_ends(self, asked_at: datetime | None = None) -> None:
        """Ask the broker for the end of every partition of the topics (for `lag`); with
        `asked_at` (the wall clock before asking), `caught_up_at` becomes it once every
        partition is applied up to those ends.

        Every partition, not only the assigned ones: with several instances in the group, one
        that has read its own partitions would otherwise expire a session whose activity lies
        unread on another instance's partition (an expiry is final). The other instances'
        progress is their positions stored in the database, which they write with the rows.
        """
        partitions = self._partitions()
        if not partitions:
            return  # the topics' metadata not known yet
        before: dict[TopicPartitionKey, int] = {}
        if asked_at is not None:  # read before the ends are asked: never past a true end
            async with self._engine.connect() as conn:
                before = await load_positions(conn, self._name, self._topics)
        ends: dict[TopicPartition, int] = await self.consumer.end_offsets(partitions)
        self._asked_ends = {(tp.topic, tp.partition): end for tp, end in ends.items()}
        if asked_at is None:
            return
        if not self._past_end_loaded:  # noted before a restart: kept until the repair
            async with self._engine.connect() as conn:
                kept = await load_past_end(conn, self._name, self._topics)
            self._past_end_loaded = True
            for (topic, partition), (position, end) in sorted(kept.items()):
                self.past_end[(topic, partition)] = (position, end)
                log.error(
                    "%s partition %d: the position stored for consumer %s was found past the "
                    "partition's end (%d, its end then %d) and is not repaired: the records "
                    "there were skipped as applied already; sweeps wait. Stop the registries, "
                    "then set the position or rebuild (docs/operations.md#registrypositionpastend)",
                    escape_reason(topic),
                    partition,
                    escape_reason(self._name),
                    position,
                    end,
                )
        noted = dict(self.past_end)
        past_end = self._past_end(before)
        if new := {key: note for key, note in self.past_end.items() if key not in noted}:
            async with self._engine.begin() as conn:
                await note_past_end(conn, self._name, new, asked_at)
        async with self._engine.connect() as conn:
            stored = await load_positions(conn, self._name, self._topics)
        if not stored.keys() <= self._asked_ends.keys():
            # a partition the group has applied that this consumer's metadata lacks: the
            # topic grew and the metadata is stale, so other new partitions may be missing too
            log.warning(
                "partitions the group has applied are not in the consumer's metadata yet: "
                "%s; sweeps wait",
                sorted(stored.keys() - self._asked_ends.keys()),
            )
            return
        if past_end:
            return  # the group's moment stays where it was: sweeps wait
        await self._ask_starts(ends, stored)
        self._applied_by_group = {
            key: max(stored.get(key, 0), self._starts.get(key, 0)) for key in self._asked_ends
        }
        self._asks.append(_Ask(asked_at, dict(self._asked_ends)))
        if len(self._asks) > ASKS_KEPT:  # steadily behind: keep moments spread over the lag
            self._asks = self._asks[::2]
        self._note_caught_up()

    def _past_end(self, before: dict[TopicPartitionKey, int]) -> bool:
        """Note the partitions whose stored position, read `before` the ends were asked, is
        past the end just asked; whether any is noted. A position is stored only once the
        records before it are applied, and an end never goes back (read the other way round,
        positions stored meanwhile passed the ends asked: every busy ask was flagged, a review),
        so one past it means the records there are not the ones applied: the topic deleted and
        made again, its log cut short (an unclean leader election), or a position moved by
        hand. Every record there until the end reaches it would be skipped as applied,
        silently, and the partition counted caught up; instead sweeps wait (an expiry is
        final), and it is logged, counted and alerted on (RegistryPositionPastEnd) until the
        repair (`positions set`, which refuses while a registry runs), kept in the database
        across restarts: the end passing the position again hides nothing of what was
        skipped (docs/operations.md#registrypositionpastend). Before stop 69 a record placed by its
        producer past its batch moved positions there."""
        for key, position in sorted(before.items()):
            end = self._asked_ends.get(key)
            if end is None or position <= end or self.past_end.get(key, (None, 0))[0] == position:
                continue
            self.past_end[key] = (position, end)
            log.error(
                "%s partition %d: the position stored for consumer %s, %d, is past the "
                "partition's end, %d: the records there are skipped as applied already; "
                "sweeps wait. Stop the registries, then set the position or rebuild "
                "(docs/operations.md#registrypositionpastend)",
                escape_reason(key[0]),
                key[1],
                escape_reason(self._name),
                position,
                end,
            )
        return bool(self.past_end)

    async def _ask_starts(
        self, ends: dict[TopicPartition, int], stored: dict[TopicPartitionKey, int]
    ) -> None:
        """Records deleted by retention before anyone applied them are read as far as they
        ever can be: a position stored before them (or none) must not stop every sweep. The
        first offsets of partitions behind their ends are asked once a minute."""
        if time.monotonic() - self._starts_asked < STARTS_ASKED_EVERY_SECONDS:
            return
        behind = [
            tp
            for tp, end in ends.items()
            if max(stored.get(key := (tp.topic, tp.partition), 0), self.positions.get(key, 0)) < end
        ]
        if behind:
            starts: dict[TopicPartition, int] = await self.consumer.beginning_offsets(behind)
            self._starts = {(tp.topic, tp.partition): start for tp, start in starts.items()}
        else:
            self._starts = {}
        self._starts_asked = time.monotonic()

    def _partitions(self) -> list[TopicPartition]:
        """Every partition of the topics, or none while one topic's metadata is unknown."""
        partitions: list[TopicPartition] = []
        for topic in self._topics:
            numbers: set[int] | None = self.consumer.partitions_for_topic(topic)
            if not numbers:
                return []
            partitions.extend(TopicPartition(topic, n) for n in sorted(numbers))
        return partitions

    def _applied(self, key: TopicPartitionKey) -> int:
        return max(self.positions.get(key, 0), self._applied_by_group.get(key, 0))

    def _reached(self, ask: _Ask) -> bool:
        """Whether every partition is applied up to its end at `ask` (the last partition found
        short is checked first, so an ask still short costs one comparison)."""
        if ask.blocker is not None and self._applied(ask.blocker) < ask.ends[ask.blocker]:
            return False
        for key, end in ask.ends.items():
            if self._applied(key) < end:
                ask.blocker = key
                return False
        return True

    def _note_caught_up(self) -> None:
        """Move `caught_up_at` to the latest moment reached (newest first: where the group is
        behind, an older ask may be reached while a newer one is not)."""
        for ask in reversed(self._asks):
            if self._reached(ask):
                moment = ask.asked_at
                if self.caught_up_at is None or moment > self.caught_up_at:
                    self.caught_up_at = moment
                self._asks = [a for a in self._asks if a.asked_at > moment]
                return

    def blocking(self) -> Blocker | None:
        """The partition the oldest moment not reached waits for (None: every moment asked is
        reached): the first thing to look at while sweeps lag the clock."""
        for ask in self._asks:
            if not self._reached(ask) and ask.blocker is not None:
                key = ask.blocker
                return Blocker(key[0], key[1], self._applied(key), ask.ends[key])
        return None

    def positioning_started(self) -> None:
        """A rebalance begins: what is fetched until its partitions are sought to their
        stored positions may start anywhere (`run`)."""
        self._positionings += 1
        self._positioned.clear()

    def positioning_ended(self) -> None:
        """The assigned partitions are at their stored positions."""
        self._positionings += 1
        self._positioned.set()

    def subscribe(self) -> None:
        """Subscribe to the topics with the seeking rebalance listener."""
        self.consumer.subscribe(topics=self._topics, listener=SeekToStoredPositions(self))

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Seek partitions to the positions stored under this consumer's name."""
        if not partitions:
            return
        async with self._engine.connect() as conn:
            stored = await load_positions(conn, self._name, {tp.topic for tp in partitions})
        for tp in partitions:
            if tp not in self.consumer.assignment():
                continue  # revoked while the positions were read: its next owner seeks it
            offset = stored.get((tp.topic, tp.partition))
            if offset is None:
                await self.consumer.seek_to_beginning(tp)
            else:
                self.consumer.seek(tp, offset)
                self.positions[(tp.topic, tp.partition)] = offset

    async def run(self) -> None:
        """Consume until cancelled; a failed batch is retried from the stored positions.

        Three stages overlap: while the database commits batch n, batch n + 1 is fetched and
        decoded (the database works on another core), and once batch n has committed its
        outbox relay and Kafka offset commit (`_relay`, `_commit`) run while batch
        n + 1 is applied. Batches still commit one at a time, in order, and so do their relays,
        and their offset commits, each in a chain of its own: a relay never waits for an offset
        commit. Neither is needed for exactly once: the positions stored with the rows are the
        truth, and outbox rows stay until sent.
        """
        pending: asyncio.Task[IngestOutcome] | None = None
        fetch: asyncio.Future[Any] | None = None
        try:
            while True:
                positionings, positioned = self._positionings, self._positioned.is_set()
                fetch = asyncio.ensure_future(
                    self.consumer.getmany(
                        timeout_ms=self._poll_timeout_ms, max_records=self._max_records
                    )
                )
                if pending is not None:
                    await asyncio.wait({fetch, pending}, return_when=asyncio.FIRST_COMPLETED)
                    if not fetch.done() and _succeeded(pending):
                        # A quiet stream: commit and relay the batch now, not after a whole
                        # poll timeout (a termination's revocation would wait for it).
                        done, pending = pending, None
                        await self._settle(done)
                corrupt: CorruptBatch | None = None
                try:
                    batch = await fetch
                except CorruptBatch as met:  # what came before it was handed over already
                    batch, corrupt = {}, met
                self.alive_at = time.monotonic()
                decoded = await self._ingestor.decode_yielding(batch) if batch else {}
                if pending is not None:
                    done, pending = pending, None
                    if not await self._settle(done):
                        continue  # the consumer was re-seeked: `decoded` is stale, drop it
                if not batch and corrupt is None and positioned:
                    # a quiet fetch, and every record handed over before it applied
                    await self._move_past_empty(positionings)
                if (decoded or corrupt) and (not positioned or positionings != self._positionings):
                    # Fetched while a rebalance was under way: aiokafka fetches newly assigned
                    # partitions from the group's committed offsets (or the beginning) while
                    # the listener reads the stored positions, so this may start before or
                    # after them. Applied, records past a stored position would move it on
                    # over records never applied. Dropped, and every partition sought again;
                    # a damaged batch met so may lie before the stored position: held only if
                    # met again from there.
                    await self._reposition()
                    continue
                if corrupt is not None:
                    await self._hold(corrupt)
                    continue
                if decoded:
                    pending = asyncio.create_task(self._apply(decoded))
        finally:
            for retry in self._retries.values():
                retry.cancel()
            if fetch is not None and not fetch.done():
                fetch.cancel()
            await self._stop_publishing()
            if pending is not None:
                # rolled back if cut short: the stored positions still say where to resume
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    async def _move_past_empty(self, positionings: int) -> None:
        """Store the position of each partition the consumer has moved past offsets that hold
        no record to apply: a transaction marker (the fetcher steps over control batches), or
        a batch compaction emptied. Called after a fetch that handed over nothing, with every
        record handed over before it applied, so what lies between the stored position and the
        consumer's is no record. Without this a partition ending in a marker was never applied
        up to its end, and the sweeps, which wait for every partition of the group, waited for
        a record that might never come (`positionings`: taken before the fetch; a rebalance
        since may have sought the partitions, and nothing is stored then)."""
        paused = self.consumer.paused()
        behind: list[TopicPartition] = []
        for tp in self.consumer.assignment():
            end = self._end(tp)
            if end is None or tp in paused or tp in self.held:
                continue
            if self.positions.get((tp.topic, tp.partition), 0) < end:
                behind.append(tp)
        if not behind:
            return  # the usual quiet fetch: nothing to look at
        moved: dict[TopicPartitionKey, int] = {}
        try:
            for tp in behind:
                position: int = await self.consumer.position(tp)  # waits only if not valid
                key = (tp.topic, tp.partition)
                if position > self.positions.get(key, 0):
                    moved[key] = position
            if not moved:
                return
            async with self.gate:  # a rebalance's revocation waits for it, as for a batch
                if positionings != self._positionings:
                    return
                stored = await self._ingestor.move_past(moved)
        except RETRYABLE as exc:  # the database away, or the partition revoked meanwhile
            log.warning(
                "positions past offsets without records not stored, tried again at the next "
                "quiet fetch: %s",
                escape_reason(str(exc)),
            )
            return
        for key, offset in sorted(moved.items()):
            told = key in self._told_empty
            self._told_empty.add(key)
            log.log(
                logging.DEBUG if told else logging.WARNING,
                "%s partition %d: no record to apply before offset %d (a transaction marker: a "
                "producer writes Kafka transactions, which the contract's producers do not); "
                "stepped over",
                escape_reason(key[0]),
                key[1],
                offset,
            )
        self.positions.update(stored)
        self._note_caught_up()
        committing = _unfinished(self._committing)
        self._committing = asyncio.create_task(
            _after(committing, self._commit, IngestOutcome(positions=stored))
        )

    async def _hold(self, corrupt: CorruptBatch) -> None:
        """Hold the partition of a batch whose CRC fails and read the others on.

        Its records are what their producer sent, damaged where the broker keeps them: never
        skipped (a lost `session.terminated` would leave a session open), and stopping the
        registry would stop every tenant. The partition is fetched again every
        `held_retry_seconds`; once the broker serves the batch whole (the damaged replica
        repaired, or leadership moved to a whole one) it flows on by itself.
        """
        tp = corrupt.tp
        log.error(
            "%s; partition held, the others read on; fetched again every %g s until read "
            "(docs/operations.md#registrypartitionheld)",
            corrupt,
            self._held_retry_seconds,
        )
        self.held[tp] = corrupt
        if self._metrics is not None:
            self._metrics.corrupt_batches.inc()
        if tp in self.consumer.assignment():
            self.consumer.pause(tp)
        if (earlier := self._retries.pop(tp, None)) is not None:
            earlier.cancel()  # met again after a rebalance gave it back: one retry at a time
        later = asyncio.get_running_loop().call_later
        self._retries[tp] = later(self._held_retry_seconds, self._retry_held, tp)
        # aiokafka takes the records of the other partitions of a fetch before it meets the
        # batch, moving their positions, and drops them with the error: read them again
        await self.seek_to_stored_when_readable(list(self.consumer.assignment()))

    def _retry_held(self, tp: TopicPartition) -> None:
        self._retries.pop(tp, None)
        if tp not in self.consumer.assignment():  # revoked meanwhile: its next owner meets it
            self.held.pop(tp, None)
            return
        if tp in self.consumer.paused():
            self.consumer.resume(tp)  # a batch still damaged holds it again

    def _release_read_past(self) -> None:
        """Forget the held partitions whose stored position is past their damaged batch."""
        for tp, corrupt in list(self.held.items()):
            if self.positions.get((tp.topic, tp.partition), -1) > corrupt.position:
                del self.held[tp]
                log.warning("%s partition %d read past the batch held: flowing", *tp)

    async def _apply(self, decoded: dict[TopicPartitionKey, Decoded]) -> IngestOutcome:
        async with self.gate:
            started = time.perf_counter()
            outcome = await self._ingestor.apply(decoded)
            outcome.seconds = time.perf_counter() - started
            return outcome

    async def _settle(self, task: asyncio.Task[IngestOutcome]) -> bool:
        """Wait for a batch; on failure re-seek to the stored positions and say so."""
        try:
            outcome = await task
        except RETRYABLE as exc:
            if self._metrics is not None:
                self._metrics.batches_failed.inc()
            # a database error can quote the batch's data: escaped and bounded like every reason
            log.warning(
                "batch failed, retrying from the stored positions: %s", escape_reason(str(exc))
            )
            await self._reseek_when_readable()
            return False
        self.positions.update(outcome.positions)
        if self.held:
            self._release_read_past()
        self._note_caught_up()
        if self._metrics is not None:
            self._metrics.committed(
                outcome.seconds,
                outcome.event_types,
                outcome.dead_letter_reasons,
                outcome.commands,
                outcome.terminated,
                outcome.skipped,
                outcome.miskeyed,
                outcome.dated_ahead,
                outcome.producer_dated,
                outcome.awaiting_creation,
                expiries_not_due=outcome.expiries_not_due,
                creations_contested=outcome.creations_contested,
                commands_failed=outcome.commands_failed,
                served_after_expiry=outcome.served_after_expiry,
            )
        # what the last relay or offset commit raised beyond its retries stops the loop
        relaying, committing = _unfinished(self._publishing), _unfinished(self._committing)
        self._publishing = asyncio.create_task(_after(relaying, self._relay, outcome))
        self._committing = asyncio.create_task(_after(committing, self._commit, outcome))
        return True

    async def _relay(self, outcome: IngestOutcome) -> None:
        """After a batch committed: its relay, while the next batch is applied. It waits for
        no offset commit: a termination's revocation must not wait for the group's
        coordinator (a broker round trip that only keeps lag tools honest, retried for as
        long as the coordinator is loading or moving)."""
        if self._after_batch is not None:
            await self._after_batch(outcome)

    async def published(self) -> None:
        """Wait for the relays and offset commits of the batches settled so far."""
        while waiting := {
            task
            for task in (self._publishing, self._committing)
            if task is not None and not task.done()
        }:
            await asyncio.wait(waiting)

    async def _stop_publishing(self) -> None:
        # Cut short, not awaited: a stopping registry holds the relay (`OutboxRelay.paused`)
        # while the loop stops. Outbox rows left are sent by the next relay; Kafka's offsets
        # are a copy of the stored positions.
        tasks = (self._publishing, self._committing)
        self._publishing = self._committing = None
        for task in tasks:
            if task is None:
                continue
            if not task.done():
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                try:
                    await task
                except Exception:
                    log.exception("relay or offset commit of the last batch failed")

    async def _reposition(self) -> None:
        """After a batch fetched during a rebalance is dropped: once the rebalance is over,
        seek every assigned partition to its stored position again (the consumer's own
        position has moved past the dropped records)."""
        if self._metrics is not None:
            self._metrics.batches_dropped.inc()
        log.info("batch fetched during a rebalance dropped; seeking to the stored positions")
        await self._positioned.wait()
        await self.seek_to_stored_when_readable(list(self.consumer.assignment()))

    async def seek_to_stored_when_readable(self, partitions: list[TopicPartition]) -> None:
        """`seek_to_stored` at once, or, while the database or broker fails it, as
        `_reseek_when_readable` does."""
        try:
            await self.seek_to_stored(partitions)
        except RETRYABLE:
            await self._reseek_when_readable()

    async def _reseek_when_readable(self) -> None:
        """Seek back to the stored positions, waiting (with backoff) while the database is away.

        Nothing is fetched or committed meanwhile: the group's offsets stay where the last
        committed batch left them, and the retried batch is fenced by the stored positions.
        """
        delay = RETRY_FIRST_SECONDS
        while True:
            await asyncio.sleep(delay)
            self.alive_at = time.monotonic()  # waiting for the database is not a hang
            try:
                await self.seek_to_stored(list(self.consumer.assignment()))
                return
            except RETRYABLE as exc:
                delay = min(delay * 2, RETRY_MAX_SECONDS)
                log.warning(
                    "stored positions unreadable, retrying in %.1f s: %s",
                    delay,
                    escape_reason(str(exc)),
                )

    async def _commit(self, outcome: IngestOutcome) -> None:
        # best effort: the stored position is the truth, this only keeps lag tools honest
        assigned = self.consumer.assignment()
        offsets = {
            tp: offset
            for (topic, partition), offset in outcome.positions.items()
            if (tp := TopicPartition(topic, partition)) in assigned
        }
        if not offsets:
            return
        try:
            await self.consumer.commit(offsets)
        except KafkaError as exc:
            log.debug("offset commit skipped: %s", exc)


async def _after(
    previous: asyncio.Task[None] | None,
    step: Callable[[IngestOutcome], Awaitable[None]],
    outcome: IngestOutcome,
) -> None:
    """One link of a chain kept in the batches' order: `step` of a batch once the previous
    batch's link is done."""
    if previous is not None:
        await previous
    await step(outcome)


def _unfinished(task: asyncio.Task[None] | None) -> asyncio.Task[None] | None:
    """`task` if it still runs; None if it is done (raising what it raised, if anything)."""
    if task is not None and task.done():
        task.result()
        return None
    return task


def _succeeded(task: asyncio.Task[IngestOutcome]) -> bool:
    """Whether a finished batch task committed (a failure is settled after the fetch)."""
    return task.done() and not task.cancelled() and task.exception() is None
