"""Wiring: the registry built from its settings, with start/stop and the helpers tests use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime

from aiokafka import TopicPartition

from read_model.database import open_store, upgrade_schema
from read_model.store import Store
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_consumer, new_producer
from session_registry.adapters.dead_letters import KafkaDeadLetters
from session_registry.adapters.outbox import OutboxRelay, outbox_size
from session_registry.adapters.positions import load_positions
from session_registry.entrypoints.consumer import RETRYABLE, ConsumerLoop
from session_registry.service_layer.expiry import Sweeper, SweepOutcome
from session_registry.service_layer.ingest import Ingestor, IngestOutcome
from session_registry.service_layer.projection import Projector
from session_registry.settings import RegistrySettings

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
RELAY_DRAIN_SECONDS = 10.0


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


class Registry:
    """The session registry: consumer loop, outbox relay and expiry sweeper over one database."""

    def __init__(self, settings: RegistrySettings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self.store = store
        self.engine = store.engine
        self.clock = clock
        self.topics = settings.topics
        self.producer = new_producer(settings, linger_ms=5)
        self.relay = OutboxRelay(store, self.producer, chunk=settings.outbox_chunk)
        self.sweeper = Sweeper(store, self.topics, batch_size=settings.sweep_batch_size)
        consumer = new_consumer(
            settings,
            group_id=settings.consumer_group,
            group_instance_id=settings.group_instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            fetch_max_bytes=max(64 * 1024 * 1024, settings.max_partition_fetch_bytes),
        )
        ingestor = Ingestor(
            store,
            Projector(self.topics, activity_only_seconds=settings.activity_only_seconds),
            settings.consumer_group,
            KafkaDeadLetters(self.producer, self.topics.dead_letters, settings.consumer_group),
            clock,
        )
        self.loop = ConsumerLoop(
            consumer,
            [self.topics.events, self.topics.commands],
            store.engine,
            ingestor,
            settings.consumer_group,
            max_records=settings.batch_max_records,
            poll_timeout_ms=settings.poll_timeout_ms,
            after_batch=self._after_batch,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._started = False

    @classmethod
    def from_settings(cls, settings: RegistrySettings, *, clock: Clock = utc_now) -> Registry:
        """A registry for these settings (nothing is started yet)."""
        return cls(
            settings, open_store(settings.database_url, pool_size=settings.db_pool_size), clock
        )

    async def start(self) -> None:
        """Migrate, create topics, relay leftovers, then start consuming and sweeping."""
        if self.settings.migrate_on_start:
            await upgrade_schema(self.store)
        if self.settings.create_topics:
            await ensure_topics(self.settings, self.topics)
        await self.producer.start()
        await self.relay.relay()  # whatever a crash left between commit and send
        self.loop.subscribe()
        await self.loop.consumer.start()
        self._started = True
        self._tasks.append(asyncio.create_task(self.loop.run(), name="registry-consumer"))
        if self.settings.sweep_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self._sweep_forever(), name="registry-sweeper"))
        log.info("registry started: group %s, topics %s", self.settings.consumer_group, self.topics)

    async def stop(self) -> None:
        """Stop consuming and sweeping, then close Kafka clients and the database pool.

        A relay in flight finishes first (up to `RELAY_DRAIN_SECONDS`), so a graceful stop
        never publishes the same outbox records twice.
        """
        async with self.relay.paused(RELAY_DRAIN_SECONDS):
            for task in self._tasks:
                task.cancel()
            for task in self._tasks:
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._tasks.clear()
        if self._started:
            await self.loop.consumer.stop()
            await self.producer.stop()
            self._started = False
        await self.store.dispose()

    async def run_forever(self) -> None:
        """Start, run until SIGINT/SIGTERM or a task fails, then stop."""
        stopping = asyncio.Event()
        running = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            running.add_signal_handler(sig, stopping.set)
        await self.start()
        waiter = asyncio.create_task(stopping.wait())
        try:
            done, _ = await asyncio.wait(
                [waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            waiter.cancel()
            await self.stop()

    async def sweep_once(self, now: datetime | None = None) -> SweepOutcome:
        """Expire and tombstone what is due at `now` (default: the clock), then relay."""
        async with self.loop.gate:
            outcome = await self.sweeper.sweep(now or self.clock())
        await self.relay.relay()
        return outcome

    async def wait_until_idle(self, timeout: float) -> None:  # noqa: ASYNC109 (public API name)
        """Return once every assigned partition is consumed to its end and the outbox is empty."""
        deadline = time.monotonic() + timeout
        while not await self._idle():
            if time.monotonic() > deadline:
                raise TimeoutError(f"registry not idle after {timeout} s")
            await asyncio.sleep(0.05)

    async def _idle(self) -> bool:
        assigned: set[TopicPartition] = self.loop.consumer.assignment()
        if not assigned:
            return False
        async with self.engine.connect() as conn:
            if await outbox_size(conn) > 0:
                return False
            ends = await self.loop.consumer.end_offsets(list(assigned))
            stored = await load_positions(conn, self.settings.consumer_group)
        return all(stored.get((tp.topic, tp.partition), 0) >= end for tp, end in ends.items())

    async def _after_batch(self, outcome: IngestOutcome) -> None:
        if not outcome.published:
            return
        try:
            await self.relay.relay()
        except RETRYABLE as exc:  # the rows stay in the outbox; the next relay sends them
            log.warning("outbox relay failed: %s", exc)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            try:
                await self.sweep_once()
            except Exception:  # a failed sweep is retried on the next tick
                log.exception("expiry sweep failed")
