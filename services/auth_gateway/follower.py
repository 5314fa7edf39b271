"""Reading a compacted topic into memory: every partition, from the beginning, then following.

No consumer group (nothing to rebalance, no offsets committed): each process reads the whole
topic itself, because a compacted topic *is* the current state, keyed. `ready` is set once
each partition's position has reached the end offset read at start-up. The consumer then
keeps following; if the broker goes away aiokafka retries in the background, what was read
stays in memory, and `staleness_seconds()` grows until the next successful fetch.

Latency: a fetch is a long poll that the broker answers as soon as a record arrives, so a
new record is applied within a broker round trip whatever `fetch_max_wait_ms` is; the wait
only bounds how often an idle consumer hears from the broker (which staleness measures).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError

log = logging.getLogger(__name__)

RETRY_SECONDS = 1.0


class TopicMissing(KafkaError):  # type: ignore[misc]
    """The topic does not exist (yet); it is looked for again every RETRY_SECONDS."""


class CompactedTopicFollower(ABC):
    """Base of in-memory views of a compacted topic; subclasses say how a record is applied."""

    def __init__(
        self,
        bootstrap_servers: str,
        topic: str,
        *,
        fetch_max_wait_ms: int = 100,
        clock: Callable[[], float] = time.time,
        missing_topic_log_level: int = logging.WARNING,
    ) -> None:
        self.topic = topic
        self._missing_level = missing_topic_log_level
        self._bootstrap = bootstrap_servers
        self._fetch_max_wait_ms = fetch_max_wait_ms
        self._clock = clock
        self.ready_event = asyncio.Event()
        self._started_at = clock()
        self._last_contact: float | None = None
        self._positions: dict[TopicPartition, int] = {}

    @abstractmethod
    def apply(self, key: bytes | None, value: bytes | None) -> None:
        """Fold one record into memory (a None value is a tombstone)."""

    @property
    def ready(self) -> bool:
        """True once the topic was read up to the end offsets seen at start-up."""
        return self.ready_event.is_set()

    def staleness_seconds(self) -> float:
        """Seconds since the broker last answered a fetch for every partition."""
        return max(0.0, self._clock() - (self._last_contact or self._started_at))

    async def run(self) -> None:
        """Read and follow the topic until cancelled, reconnecting as needed."""
        while True:
            consumer = AIOKafkaConsumer(
                bootstrap_servers=self._bootstrap,
                group_id=None,
                enable_auto_commit=False,
                auto_offset_reset="earliest",
                isolation_level="read_committed",
                fetch_max_wait_ms=self._fetch_max_wait_ms,
                retry_backoff_ms=100,
            )
            try:
                await consumer.start()
                await self._follow(consumer)
            except TopicMissing:
                log.log(self._missing_level, "topic %s does not exist (yet)", self.topic)
            except KafkaError as exc:
                log.warning("reading %s: %r; retrying in %ss", self.topic, exc, RETRY_SECONDS)
            except Exception:
                # Whatever went wrong, a view that stops following serves stale state
                # forever: log it and start over from the positions reached.
                log.exception("reading %s failed; retrying in %ss", self.topic, RETRY_SECONDS)
            finally:
                await consumer.stop()
            await asyncio.sleep(RETRY_SECONDS)

    async def _assign(self, consumer: AIOKafkaConsumer) -> list[TopicPartition]:
        # aiokafka has no public call returning a topic's partitions without subscribing
        # (which would hide new partitions until the next metadata refresh), hence _client.
        cluster = await consumer._client.fetch_all_metadata()
        partitions = cluster.partitions_for_topic(self.topic)
        if not partitions:
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
        tps = await self._assign(consumer)
        targets = await consumer.end_offsets(tps) if not self.ready else {}
        while True:
            batches = await consumer.getmany(timeout_ms=self._fetch_max_wait_ms, max_records=5000)
            for batch in batches.values():
                for record in batch:
                    self.apply(record.key, record.value)
            for tp in tps:
                self._positions[tp] = await consumer.position(tp)
            polled = [consumer.last_poll_timestamp(tp) for tp in tps]
            if all(polled):
                self._last_contact = min(polled) / 1000
            if not self.ready and all(self._positions[tp] >= targets[tp] for tp in tps):
                log.info("%s read up to its start-up end offsets: ready", self.topic)
                self.ready_event.set()
