"""Reading a compacted topic into memory: every partition, from the beginning, then following.

No consumer group (nothing to rebalance, no offsets committed): each process reads the whole
topic itself, because a compacted topic *is* the current state, keyed. `ready` is set once
each partition's position has reached the end offset read at start-up. The consumer then
keeps following; if the broker goes away aiokafka retries in the background, what was read
stays in memory, and `staleness_seconds()` grows until the view is confirmed current again.

Current means confirmed, never assumed: a partition is confirmed at time t when a fetch
response that arrived after t reported a high watermark that the position has reached. The
view is confirmed at the oldest of its partitions' confirmations, and `current_until` is that
moment plus `max_staleness_seconds` (on the monotonic clock): a broker outage, a partition
without a leader, lag, or a follower task that stopped all leave it unconfirmed, so it goes
stale on its own; nothing has to notice the failure.

The high watermark, never the last stable offset: the consumer reads `read_committed` (an
aborted transaction's records are never applied), so it cannot read past a transaction still
open, and the last stable offset stops there too. Confirming against it (before 2026-12-06)
let one producer that opened a transaction on the topic and never ended it (up to the
broker's `transaction.max.timeout.ms`, 15 minutes) hide every later record while the view
said current. Now such a partition goes unconfirmed, so the view goes stale, and a warning
names the offset it is held at. Once the transaction ends, its commit or abort marker is
fetched; aiokafka steps over the marker and over an aborted transaction's records, so the
position reaches the high watermark and the view is confirmed again. The start-up end
offsets (`end_offsets`, which answers last stable offsets under read_committed) make the view
`ready` but confirm nothing; only a fetch answer does.

Partitions added to the topic while it runs are followed too, from their beginning: the
consumer's metadata is refreshed every `partitions_check_seconds` (30), and a partition it did
not assign restarts it with every partition (positions kept). Before 2026-12-05 they were read
only after a restart, while `/readyz` said current: once the registry's producer sent
revocations there (keys move when the count grows), running gateways never saw them. Until
the new partitions are read the view is not confirmed, so it goes stale rather than current.

Latency: a fetch is a long poll that the broker answers as soon as a record arrives, so a
new record is applied within a broker round trip whatever `fetch_max_wait_ms` is; the wait
only bounds how often an idle consumer hears from the broker (which staleness measures).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaError, TopicAuthorizationFailedError

from session_contracts.kafka_clients import (
    connection_failure,
    describe_kafka_error,
    new_consumer,
    stop_consumer,
)
from session_contracts.kafka_records import CorruptBatch
from session_contracts.settings import KafkaSettings
from session_contracts.tracing import RecordHeaders

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class TopicMissing(KafkaError):  # type: ignore[misc]
    """The topic does not exist (yet); it is looked for again every RETRY_SECONDS."""


class PartitionsAdded(Exception):
    """The topic has partitions the consumer was not assigned: it starts again with all."""


class Unanswered(Exception):
    """No fetch of one of the consumer's partitions was answered for `UNANSWERED_SECONDS`: it
    starts again with a new client, which reads the credentials, key and CA files again."""


UNANSWERED_SECONDS = 30.0
"""How long a consumer whose fetches go unanswered is kept: aiokafka keeps the password and
TLS context it was built with and retries with them for ever, so a rotated secret (the old
SCRAM password removed, a certificate replaced) left the view stale until a restart (a
review, stop 70)."""


class CompactedTopicFollower(ABC):
    """Base of in-memory views of a compacted topic; subclasses say how a record is applied."""

    def __init__(
        self,
        kafka: KafkaSettings,
        topic: str,
        *,
        fetch_max_wait_ms: int = 100,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        max_staleness_seconds: float = math.inf,
        missing_topic_log_level: int = logging.WARNING,
        partitions_check_seconds: float = 30.0,
    ) -> None:
        self.topic = topic
        self._missing_level = missing_topic_log_level
        self._kafka = kafka
        self.failure: str | None = None
        """Why the last attempt to read failed (None: reading, or never tried)."""
        self._corrupt: str | None = None
        """The damaged batch last logged, until a fetch is answered again (logged once)."""
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._metadata_max_age_ms = round(partitions_check_seconds * 1000)
        self._clock = clock
        self.monotonic = monotonic
        self.max_staleness_seconds = max_staleness_seconds
        self.ready_event = asyncio.Event()
        self._started_at = monotonic()
        self._positions: dict[TopicPartition, int] = {}
        self._confirmed: dict[TopicPartition, float] = {}
        self._held: dict[TopicPartition, int] = {}
        """Partitions an open transaction holds below their end, at the offset logged."""
        self.confirmed_at: float | None = None
        """Monotonic time up to which every partition is known to be read (None: never)."""
        self.current_until = -math.inf
        """Monotonic time until which the view counts as current (ready and not stale)."""
        self.next_confirmation = asyncio.Event()
        """Set (and replaced) at the next confirmation, for waiters."""

    @abstractmethod
    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record into memory (a None value is a tombstone).

        It should not raise; if it does, the record is logged and skipped, never retried.
        """

    @property
    def ready(self) -> bool:
        """True once the topic was read up to the end offsets seen at start-up."""
        return self.ready_event.is_set()

    @property
    def is_current(self) -> bool:
        """Ready, and confirmed current within `max_staleness_seconds`."""
        return self.monotonic() <= self.current_until

    async def wait_current(self) -> None:
        """Wait until read and confirmed current (wrap in `asyncio.timeout(...)`)."""
        await self.ready_event.wait()
        while True:
            confirmation = self.next_confirmation
            if self.is_current:
                return
            await confirmation.wait()

    def staleness_seconds(self) -> float:
        """Seconds since the view was last confirmed current (since start-up, before that)."""
        since = self._started_at if self.confirmed_at is None else self.confirmed_at
        return max(0.0, self.monotonic() - since)

    def confirm(self, partitions: list[TopicPartition], at: dict[TopicPartition, float]) -> None:
        """Record that partitions were read up to their end as of monotonic times `at`.

        The view is confirmed at the oldest confirmation over `partitions` (every partition
        the topic has); while one of them was never confirmed, the view is not.
        """
        for tp, when in at.items():
            if when > self._confirmed.get(tp, -math.inf):
                self._confirmed[tp] = when
        if not partitions or any(tp not in self._confirmed for tp in partitions):
            return
        self.confirmed_at = min(self._confirmed[tp] for tp in partitions)
        if self.ready:
            self.current_until = self.confirmed_at + self.max_staleness_seconds
        confirmation, self.next_confirmation = self.next_confirmation, asyncio.Event()
        confirmation.set()

    def mark_current(self) -> None:
        """Declare the view ready and confirmed now (tests and benchmarks without a broker)."""
        self.ready_event.set()
        tp = TopicPartition(self.topic, 0)
        self.confirm([tp], {tp: self.monotonic()})

    async def run(self) -> None:
        """Read and follow the topic until cancelled, reconnecting as needed."""
        while True:
            consumer: AIOKafkaConsumer | None = None
            again = RETRY_SECONDS
            try:
                # inside the try: building it reads the mounted password, key and CA files,
                # which a rotation may replace non-atomically; one missing for a moment
                # ended this task for good (a review, stop 70), a stale view ever after
                consumer = new_consumer(
                    self._kafka,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    isolation_level="read_committed",
                    fetch_max_wait_ms=self._fetch_max_wait_ms,
                    retry_backoff_ms=100,
                    # how soon partitions added to the topic are seen (`_follow`)
                    metadata_max_age_ms=self._metadata_max_age_ms,
                )
                await consumer.start()
                await self._follow(consumer)
            except PartitionsAdded as added:
                log.warning("%s; following them from their beginning", added)
                again = 0
            except Unanswered as unanswered:
                # one line per outage: self.failure names it until an answer comes
                if self.failure != "no fetch answered":
                    log.warning(
                        "%s; a new Kafka client (credentials read again) every %.0f s until one is",
                        unanswered,
                        UNANSWERED_SECONDS,
                    )
                self.failure = "no fetch answered"
            except TopicMissing:
                cause = f"topic {self.topic} does not exist (yet)"
                if cause != self.failure:  # once, not every second it stays missing
                    log.log(self._missing_level, "%s; looked for every %ss", cause, RETRY_SECONDS)
                self.failure = cause
            except CorruptBatch as corrupt:  # never skipped: it may hold revocations
                if str(corrupt) != self._corrupt:
                    self._corrupt = str(corrupt)
                    log.error(
                        "%s; not read past until the broker serves it whole (fetched again "
                        "every %ss): this view goes stale",
                        corrupt,
                        RETRY_SECONDS,
                    )
                self.failure = str(corrupt)
            except OSError as exc:  # a credentials, key or CA file unreadable (ssl.SSLError too)
                cause = f"building the Kafka client: {exc}"
                if cause != self.failure:
                    log.error(
                        "reading %s: %s; retrying every %ss", self.topic, cause, RETRY_SECONDS
                    )
                self.failure = cause
            except KafkaError as exc:
                cause = await self._cause(exc)
                if cause != self.failure:  # one line per cause, not one per retry
                    log.warning(
                        "reading %s from Kafka %s: %s; retrying every %ss",
                        self.topic,
                        self._kafka.describe(),
                        cause,
                        RETRY_SECONDS,
                    )
                self.failure = cause
            except Exception:
                # Whatever went wrong, a view that stops following serves stale state
                # forever: log it and start over from the positions reached.
                log.exception("reading %s failed; retrying in %ss", self.topic, RETRY_SECONDS)
            finally:
                if consumer is not None:
                    await stop_consumer(consumer)  # not stop(): see there
            await asyncio.sleep(again)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # aiokafka has no public call returning a topic's partitions without subscribing
        # (which would hide new partitions until the next metadata refresh), hence _client.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topic)
        if not partitions:
            # A topic this principal may not describe is left out of the full list too: ask
            # for it by name, so a missing ACL is reported as such, not as a missing topic.
            await consumer._client.add_topic(self.topic)
            await consumer._client.force_metadata_update()
            if self.topic in consumer._client.cluster.unauthorized_topics:
                raise TopicAuthorizationFailedError(self.topic)
            raise TopicMissing(self.topic)
        tps = [TopicPartition(self.topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        for tp in tps:
            if tp in self._positions:  # reconnecting: resume, memory already holds the rest
                consumer.seek(tp, self._positions[tp])
            else:
                await consumer.seek_to_beginning(tp)
        return tps

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        observed_at = self.monotonic()  # no fetch of this consumer has been answered yet
        tps = await self._assign(consumer)
        self.failure = None
        targets = await consumer.end_offsets(tps) if not self.ready else {}
        polls: dict[TopicPartition, int] = {}
        answered_after: dict[TopicPartition, float] = {}
        # per partition, the last look that found its fetch answered: one partition led by
        # a broker the old credentials no longer reach goes unanswered while the others answer
        # (a rolling restart after a rotation), and the view is never confirmed (a review)
        # (from now: the assignment and the first end offsets may take a fetch wait a
        # partition, and the last one found unanswered at once built a client again)
        answered_at = dict.fromkeys(tps, self.monotonic())
        while True:
            batches = await consumer.getmany(timeout_ms=self._fetch_max_wait_ms, max_records=5000)
            self._corrupt = None
            for batch in batches.values():
                for record in batch:
                    self._apply_one(record.key, record.value, record.headers)
            known = consumer._client.cluster.partitions_for_topic(self.topic) or set()
            if added := sorted(known - {tp.partition for tp in tps}):
                raise PartitionsAdded(f"{self.topic} has new partitions {added}")
            now = self.monotonic()
            confirmed: dict[TopicPartition, float] = {}
            for tp in tps:
                position = self._positions[tp] = await self._position(consumer, tp)
                # A fetch answer not seen at the previous look arrived after it, so the end
                # offset it carries is the broker's end of the partition at a later moment.
                polled = consumer.last_poll_timestamp(tp)
                if polled is not None and polled != polls.get(tp):
                    polls[tp] = polled
                    answered_after[tp] = observed_at
                    answered_at[tp] = now
                end: int | None = consumer.highwater(tp)
                if tp in answered_after and end is not None and position >= end:
                    confirmed[tp] = answered_after[tp]
                self._note_held(tp, position, end, consumer.last_stable_offset(tp))
            observed_at = now
            if now - (oldest := min(answered_at.values())) > UNANSWERED_SECONDS:
                quiet = sorted(tp.partition for tp, at in answered_at.items() if at == oldest)
                raise Unanswered(
                    f"no fetch of {self.topic} partition(s) {quiet} answered for "
                    f"{now - oldest:.0f} s"
                )
            if not self.ready and all(self._positions[tp] >= targets[tp] for tp in tps):
                log.info("%s read up to its start-up end offsets: ready", self.topic)
                self.ready_event.set()
            self.confirm(tps, confirmed)

    async def _position(self, consumer: AIOKafkaConsumer, tp: TopicPartition) -> int:
        """`consumer.position(tp)`, which aiokafka retries for ever while the partition has no
        valid position (its reset refused: a leader the old credentials no longer reach), so
        the unanswered check after it was never reached (a review, stop 70): bounded."""
        try:
            async with asyncio.timeout(UNANSWERED_SECONDS):
                position: int = await consumer.position(tp)
                return position
        except TimeoutError:
            raise Unanswered(
                f"no position of {self.topic} partition {tp.partition} for "
                f"{UNANSWERED_SECONDS:.0f} s"
            ) from None

    def _note_held(
        self, tp: TopicPartition, position: int, end: int | None, stable: int | None
    ) -> None:
        """Log once when a transaction left open holds `tp` below its end (the records after
        it cannot be read under read_committed, so the view goes stale), and when it ends."""
        held = stable is not None and end is not None and 0 <= stable == position < end
        if held and self._held.get(tp) != stable:
            self._held[tp] = position
            log.warning(
                "%s partition %d: a transaction open at offset %d holds this reader there, "
                "below the end (%d): the records after it are not read, so this view goes "
                "stale until the transaction is committed or aborted",
                self.topic,
                tp.partition,
                position,
                end,
            )
        elif not held and tp in self._held:
            log.info("%s partition %d: the transaction holding it ended", self.topic, tp.partition)
            del self._held[tp]

    async def _cause(self, exc: KafkaError) -> str:
        # aiokafka's "Unable to bootstrap" hides whether it was refused, TLS or SASL.
        if isinstance(exc, KafkaConnectionError):
            return await connection_failure(self._kafka) or repr(exc)
        return describe_kafka_error(exc, "read", self.topic)

    def apply_with_headers(
        self, key: bytes | None, value: bytes | None, headers: RecordHeaders
    ) -> None:
        """`apply`, given the record's headers too (a subclass may trace with them)."""
        self.apply(key, value)

    def _apply_one(
        self, key: bytes | None, value: bytes | None, headers: RecordHeaders = ()
    ) -> None:
        # A record that makes `apply` raise is logged and passed over: raising here would
        # restart the consumer at the same position and fail on the same record forever.
        try:
            self.apply_with_headers(key, value, headers)
        except Exception:
            log.exception("a record of %s could not be applied; skipped", self.topic)
