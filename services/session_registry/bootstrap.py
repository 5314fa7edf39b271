"""Wiring: the registry built from its settings, with start/stop and the helpers tests use."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import signal
import time
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from read_model.database import open_store, upgrade_schema
from read_model.online_indexes import build_in_background
from read_model.revisions import SchemaBehind, read_standing
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.escaping import escape_reason
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import (
    learn_partitions,
    new_consumer,
    new_producer,
    producer_stop_bound,
    start_producer,
    stop_consumer,
    stop_producer,
    stops_under_way,
)
from session_registry.adapters.command_store import deferred_level
from session_registry.adapters.dead_letters import KafkaDeadLetters
from session_registry.adapters.outbox import OutboxRelay, outbox_level, outbox_size
from session_registry.adapters.positions import load_positions
from session_registry.adapters.signing_standing import (
    SigningStanding,
    read_signing,
    write_signing,
)
from session_registry.entrypoints.consumer import RETRYABLE, ConsumerLoop
from session_registry.entrypoints.http import OperationsServer, Probes, Verdict
from session_registry.metrics import RegistryMetrics, reason_class
from session_registry.service_layer.deferred_terminations import (
    DeferredTerminations,
    ResolveOutcome,
)
from session_registry.service_layer.expiry import Sweeper, SweepOutcome
from session_registry.service_layer.ingest import Ingestor, IngestOutcome
from session_registry.service_layer.projection import Projector
from session_registry.service_layer.revocation_guard import RevocationGuard
from session_registry.settings import RegistrySettings

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]
RELAY_DRAIN_SECONDS = 10.0
METADATA_MAX_AGE_MS = 30_000
"""The registry's consumer refreshes the topics' metadata at least this often."""
SWEEPS_BEHIND_WARNING_SECONDS = 300.0
"""Sweeps lagging the clock longer than this are logged, once an episode (the metric:
`session_registry_sweep_behind_seconds`)."""
DEFERRED_TICK_SECONDS = 5.0
"""How often the resolver of deferred terminations looks for work no batch woke it for."""
RELAY_BATCH_BYTES = 512 * 1024
"""The producer's batch per partition (aiokafka's default is 16 KB, ~35 records); under the
broker's default message.max.bytes of 1 MB."""


def utc_now() -> datetime:
    """The wall clock, in UTC."""
    return datetime.now(UTC)


_CLOSING: set[asyncio.Task[None]] = set()
"""Registry closes going on after their caller was cancelled, held until they end (the loop
keeps only weak references to tasks)."""


def _retrieved(task: asyncio.Task[Any]) -> None:
    """A task's exception taken, so none is logged as never retrieved."""
    if not task.cancelled():
        task.exception()


class Registry:
    """The session registry: consumer loop, outbox relay and expiry sweeper over one database."""

    def __init__(self, settings: RegistrySettings, store: Store, clock: Clock) -> None:
        self.settings = settings
        self._deferred_woken = asyncio.Event()
        self.store = store
        self.engine = store.engine
        self.clock = clock
        self.topics = settings.topics
        self.metrics: RegistryMetrics | None = (
            RegistryMetrics(lag=lambda: self.loop.lag()) if settings.registry_metrics else None
        )
        # No linger: the relay and the dead letters append a whole chunk before awaiting it,
        # so batching costs nothing to lose, and a lone revocation leaves at once. Batches of
        # up to RELAY_BATCH_BYTES: a burst's chunk goes out in a few requests.
        self.producer = new_producer(settings, linger_ms=0, max_batch_size=RELAY_BATCH_BYTES)
        self.relay = OutboxRelay(store, self.producer, chunk=settings.outbox_chunk)
        consumer = new_consumer(
            settings,
            group_id=settings.consumer_group,
            group_instance_id=settings.group_instance_id,
            session_timeout_ms=settings.session_timeout_ms,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_partition_fetch_bytes=settings.max_partition_fetch_bytes,
            fetch_max_bytes=max(64 * 1024 * 1024, settings.max_partition_fetch_bytes),
            # partitions added to a topic are known within this (aiokafka's default is 5
            # minutes): until then the sweep moment cannot wait for them, and the activity
            # grace must cover the gap (`ConsumerLoop.ask_ends`)
            metadata_max_age_ms=METADATA_MAX_AGE_MS,
        )
        dead_letters = KafkaDeadLetters(
            self.producer, self.topics.dead_letters, settings.consumer_group
        )
        # only the registry writes session.expired: with keys, it signs its own and refuses
        # the others (`session_contracts.record_signing`)
        expiries = settings.signed_expiries
        ingestor = Ingestor(
            store,
            Projector(
                self.topics,
                activity_only_seconds=settings.activity_only_seconds,
                defer_searches=True,
            ),
            settings.consumer_group,
            dead_letters,
            clock,
            expiries,
        )
        self.loop = ConsumerLoop(
            consumer,
            [self.topics.events, self.topics.commands],
            store.engine,
            ingestor,
            settings.consumer_group,
            max_records=settings.batch_max_records,
            poll_timeout_ms=settings.poll_timeout_ms,
            held_retry_seconds=settings.held_partition_retry_seconds,
            after_batch=self._after_batch,
            metrics=self.metrics,
            # the deferred terminations of partitions a rebalance brought are resolved now
            on_assigned=self._wake_resolver,
        )
        self.sweeper = Sweeper(
            store,
            self.topics,
            batch_size=settings.sweep_batch_size,
            ended_retention=settings.ended_retention,
            audit_retention=settings.audit_retention,
            activity_grace=settings.activity_grace,
            gate=self.loop.gate,
            signer=None if expiries is None else expiries.signer,
        )
        self.guard: RevocationGuard | None = None
        """Keeps the revocations topic to what the registry wrote (`revocation_guard`)."""
        if settings.revocation_guard:
            metrics = self.metrics
            self.guard = RevocationGuard(
                store,
                self.topics,
                new_consumer(
                    settings,
                    enable_auto_commit=False,
                    auto_offset_reset="earliest",
                    isolation_level="read_committed",  # as gateways read it
                ),
                clock,
                self._relay_quietly,
                (lambda n: metrics.revocations_rewritten.inc(n)) if metrics else (lambda _: None),
            )
        self._guarding = False
        """The guard's consumer was started (and is not stopped yet)."""
        self._closing: asyncio.Task[None] | None = None
        """What a cancelled stop left to do, going on without its caller (`stop`)."""
        self._cancelled: set[asyncio.Task[Any]] = set()
        """The tasks the stop cancelled (not to be cancelled again)."""
        self._client_stops: set[asyncio.Task[Any]] = set()
        """The Kafka clients' stops under way (`stop_consumer`'s, `stop_producer`'s `track`)."""
        self.deferred = DeferredTerminations(
            store,
            self.topics,
            clock=clock,
            owned=self._owned_commands,
            after_chunk=self._relay_quietly,
            gate=self.loop.gate,
            dead_letters=dead_letters,
            given_up=None if self.metrics is None else self.metrics.commands_failed.inc,
            dead_lettered=None if self.metrics is None else self._count_dead_letter,
        )
        self._tasks: list[asyncio.Task[None]] = []
        self._online: asyncio.Task[None] | None = None
        """Building the indexes `read_model.online_indexes` builds concurrently."""
        self._ends_asked_every = timedelta(seconds=settings.registry_lag_refresh_seconds)
        self._started = False
        """Consuming: the consumer's start returned."""
        self._made_at = time.monotonic()
        if self.metrics is not None:
            self.metrics.sweep_behind.set_function(self.sweep_behind_seconds)
        self._producing = False
        """The producer started (and is not stopped yet)."""
        self._consuming = False
        """The consumer's start was called (and it is not stopped yet): a start that fails or
        is cancelled half-way leaves the client's tasks running, which only `stop()` ends."""
        self.operations: OperationsServer | None = None

    @classmethod
    def from_settings(cls, settings: RegistrySettings, *, clock: Clock = utc_now) -> Registry:
        """A registry for these settings (nothing is started yet)."""
        return cls(
            settings,
            open_store(
                settings.database_url,
                pool_size=settings.db_pool_size,
                max_overflow=settings.db_max_overflow,
            ),
            clock,
        )

    async def start(self) -> None:
        """Migrate, create topics, relay leftovers, then start consuming and sweeping.

        A start that fails or is cancelled half-way is left to `stop()`, which closes what it
        opened (the producer, the consumer, the database pool); a registry starts once.
        """
        if self.settings.migrate_on_start:
            # the indexes built concurrently follow in the background: ingest goes on meanwhile
            await upgrade_schema(self.store, online_indexes=False)
        else:
            await self._check_schema()
        if self.settings.create_topics:
            await ensure_topics(self.settings, self.topics)
        # fails, not hangs, on a broker still starting or gone after the bootstrap
        await start_producer(self.producer, self.settings.kafka_request_timeout_ms / 1000)
        self._producing = True  # a start_producer that raised stopped the producer itself
        # what the relay and the dead letters write: queued, not waiting for metadata, if
        # the broker goes away before their first record
        topics = self.topics
        await learn_partitions(
            self.producer, (topics.events, topics.revocations, topics.dead_letters)
        )
        await self._relay()  # whatever a crash left between commit and send
        self.loop.subscribe()
        self._consuming = True  # first: a start ended half-way leaves its client's tasks
        await self.loop.consumer.start()
        # how it reads session.expired records, for a rebuild's swap to compare with its own:
        # once it consumes (a pod that never gets that far does not replace the row)
        await self._keep_signing_standing()
        self._started = True
        self._tasks.append(asyncio.create_task(self.loop.run(), name="registry-consumer"))
        if self.settings.sweep_interval_seconds > 0:
            self._tasks.append(asyncio.create_task(self._sweep_forever(), name="registry-sweeper"))
        self._tasks.append(asyncio.create_task(self._ask_ends_forever(), name="registry-ends"))
        self._tasks.append(
            asyncio.create_task(self._resolve_forever(), name="registry-deferred-terminations")
        )
        if self.guard is not None:
            self._guarding = True  # first: a start ended half-way leaves its client's tasks
            await self.guard.consumer.start()
            self._tasks.append(
                asyncio.create_task(self.guard.run(), name="registry-revocation-guard")
            )
        if self.settings.migrate_on_start:  # not one of `_tasks`: it ends when they are built
            self._online = asyncio.create_task(
                build_in_background(self.store), name="registry-online-indexes"
            )
        log.info("registry started: group %s, topics %s", self.settings.consumer_group, self.topics)
        if self.settings.record_signing_keys is None:
            log.warning(
                "SESSIONS_RECORD_SIGNING_KEYS is not set: a session.expired from any producer "
                "allowed on %s is applied (only counted when before its deadline); set it so "
                "the registry signs its own and dead-letters the others (docs/security.md)",
                self.topics.events,
            )

    async def _keep_signing_standing(self) -> None:
        """Write how this registry reads `session.expired` records (`registry_signing`), and
        say so when its "since" is later than the one written before: a registry started so
        applies the unsigned expiries appended in between, and a rebuild from the same
        settings would too (a review, stop 70)."""
        standing = self.settings.signing_standing

        async def keep(uow: UnitOfWork) -> SigningStanding | None:
            before = await read_signing(uow.conn)
            await write_signing(uow, standing, self.clock())
            return None if before is None else before[0]

        before = await UnitOfWork(self.store).run(keep)
        if (
            before is not None
            and standing.key_ids
            and (before.since or datetime.min.replace(tzinfo=UTC))
            < (standing.since or datetime.min.replace(tzinfo=UTC))
        ):
            log.warning(
                "SESSIONS_RECORD_SIGNING_SINCE moved later, from %s to %s: unsigned "
                "session.expired records appended between the two are applied now, forged ones "
                "too (docs/operations.md#signing-the-registrys-expiries)",
                before.since.isoformat() if before.since else "none",
                standing.since.isoformat() if standing.since else "none",
            )

    async def stop(self) -> None:
        """Stop consuming and sweeping, then close Kafka clients and the database pool; after a
        start that failed or was cancelled too, whatever it had opened.

        A relay in flight finishes first (up to `RELAY_DRAIN_SECONDS`), so a graceful stop
        never publishes the same outbox records twice. With the broker away the stop is still
        bounded: what the producer holds after another `RELAY_DRAIN_SECONDS` is given up, and
        stays in the outbox for the next start.
        """
        if self._closing is not None:  # a stop cancelled before: wait for what it left
            if not self._closing.done():
                await asyncio.shield(self._closing)
            return
        try:
            await self._stop_working()
        except asyncio.CancelledError:
            # the caller's bound: the tasks are cancelled now, and what is left goes on
            # without it, never closing anything under a task still ending
            self._finish_without_the_caller(self._closing_steps(), working=True)
            raise
        except BaseException:
            await self._close()
            raise
        await self._close()

    async def _stop_working(self) -> None:
        """The operations port, the online index build, then every task (the relay paused)."""
        if self.operations is not None:
            self.operations.stop()  # uvicorn finishes its requests and returns
            serving = [t for t in self._tasks if t.get_name() == "registry-operations"]
            if serving:  # none on a stop called again: asyncio.wait refuses an empty set
                await asyncio.wait(serving, timeout=RELAY_DRAIN_SECONDS)
        if self._online is not None:  # a build cut short leaves an invalid index: rebuilt later
            self._online.cancel()
            self._cancelled.add(self._online)
            await asyncio.wait({self._online})  # ended; a cancellation of ours still raises
            _retrieved(self._online)
            self._online = None
        async with self.relay.paused(RELAY_DRAIN_SECONDS):
            for task in self._tasks:
                task.cancel()
            self._cancelled.update(self._tasks)
            if self._tasks:
                # asyncio.wait, not each awaited under suppress(CancelledError): that swallowed
                # a cancellation of the stop itself (a review, stop 73)
                await asyncio.wait(self._tasks)
            self._tasks_ended()

    def _tasks_ended(self) -> None:
        for task in self._tasks:
            _retrieved(task)
        self._tasks.clear()
        self._started = False

    def _closing_steps(self) -> list[Callable[[], Awaitable[None]]]:
        return [
            self._stop_consuming,
            self._stop_guarding,
            self._stop_producing,
            self._close_unstarted,
            self._client_stops_ended,
            self.store.dispose,
        ]

    async def _client_stops_ended(self) -> None:
        """The Kafka clients' stops a cancelled stop left going on, to their end, bounded, and
        before the pool closes: a consumer's stop may still seek to stored positions (a
        review, stop 73). A stop not cancelled has awaited them already: nothing to wait."""
        within = producer_stop_bound(RELAY_DRAIN_SECONDS)
        if left := await stops_under_way(self._client_stops, within):
            log.warning(
                "%d Kafka client stop(s) still going on after %.0f s; closing anyway",
                len(left),
                within,
            )

    async def _close(self) -> None:
        """Close the Kafka clients and the database pool, each step whatever the ones before
        it raised: the first error ended the stop, the producer and the pool left open (a
        review, stop 73). The first error is raised (chained to what was being handled, a
        failed start's error), the others logged. Cancelled, it raises at once and the steps
        left go on without the caller."""
        steps = self._closing_steps()
        first: BaseException | None = None
        for n, step in enumerate(steps):
            try:
                await step()
            except asyncio.CancelledError:
                if first is not None:  # not raised: said here
                    log.error("stopping the registry failed", exc_info=first)
                # the step cut short again, then the rest: each is idempotent (a consumer or
                # the producer whose stop is under way is not stopped twice)
                self._finish_without_the_caller(steps[n:])
                raise
            except Exception as exc:
                if first is None:
                    first = exc
                else:
                    log.error("stopping the registry: %s failed too", step.__name__, exc_info=exc)
        if first is not None:
            raise first

    def _finish_without_the_caller(
        self, steps: list[Callable[[], Awaitable[None]]], *, working: bool = False
    ) -> None:
        """What a cancelled stop left, in a task of its own (`_closing`, which a stop called
        again waits for): with `working`, every task cancelled now and awaited first, so that
        nothing closes under one still ending; then the closing `steps`, each whatever the
        others did (a cancellation of this task too: the loop's end cancels it, and the
        steps still run). Each step's own bound bounds it; a failure is logged. A task the
        stop cancelled already is not cancelled again: that would cut its cleanup short (a
        transaction's rollback in the consumer loop's)."""
        tasks = [t for t in (self._online, *self._tasks) if t is not None] if working else []
        for task in tasks:
            # not by `cancelling()`: a task whose own timeout has just fired counts one too
            if task not in self._cancelled:
                task.cancel()

        async def in_turn() -> None:
            cancelled = False
            pending = set(tasks)
            while pending:  # to their end, whatever cancels this meanwhile
                try:
                    _, pending = await asyncio.wait(pending)
                except asyncio.CancelledError:
                    cancelled = True
            if tasks:
                self._online = None
                self._tasks_ended()
            for step in steps:
                try:
                    await step()
                except asyncio.CancelledError:
                    cancelled = True
                except Exception:
                    log.exception("stopping the registry: %s failed", step.__name__)
            if cancelled:  # the loop's end, which waits for it: said, not raised to a stop
                log.warning(
                    "the registry's close was cancelled; each of its steps was run (one cut "
                    "short may not have ended)"
                )

        self._closing = asyncio.create_task(in_turn(), name="closing the registry")
        _CLOSING.add(self._closing)
        self._closing.add_done_callback(_CLOSING.discard)

    async def _stop_consuming(self) -> None:
        if self._consuming:
            self._consuming = False
            # not stop(): see there
            await stop_consumer(self.loop.consumer, track=self._client_stops)

    async def _stop_guarding(self) -> None:
        if self._guarding and self.guard is not None:
            self._guarding = False
            await stop_consumer(self.guard.consumer, track=self._client_stops)

    async def _stop_producing(self) -> None:
        if self._producing:
            self._producing = False
            # Bounded: with the broker away, stop() would wait for the relay's batches for as
            # long as the outage lasts. Their rows stay in the outbox until acknowledged, so
            # the next start publishes them: given up here, nothing is lost.
            if not await stop_producer(
                self.producer, RELAY_DRAIN_SECONDS, track=self._client_stops
            ):
                log.warning(
                    "the broker did not take the outbox relay's records within %.0f s of the "
                    "stop; they stay in the outbox for the next start",
                    RELAY_DRAIN_SECONDS,
                )

    async def _close_unstarted(self) -> None:
        """Close the Kafka clients a start never reached (it failed before them: a schema
        behind, the broker away) or that were never started: built in the constructor, each
        warned when collected that it was never closed ("Unclosed AIOKafkaConsumer"), inside
        whatever ran then (a test of the suite was blamed for one, stop 73). Nothing of theirs
        runs yet, so their own stop() only marks them closed; on a client already stopped it
        does nothing."""
        clients: list[AIOKafkaConsumer | AIOKafkaProducer] = [self.loop.consumer, self.producer]
        if self.guard is not None:
            clients.append(self.guard.consumer)
        for client in clients:
            await client.stop()

    async def _check_schema(self) -> None:
        """Refuse to start on a schema behind this release (`SchemaBehind`): what a newer
        release folds may need what the revisions create, and each batch would fail there,
        again and again. A newer schema (a later release migrated it first) is this release's
        to run on."""
        standing = await read_standing(self.store.engine)
        if standing.state == "behind":
            raise SchemaBehind(standing, "or set SESSIONS_MIGRATE_ON_START=true")
        if standing.state == "newer":
            log.info("schema %s", standing.describe())

    async def run_forever(self) -> None:
        """Start, run until SIGINT/SIGTERM or a task fails, then stop (after a start that
        failed too: its error is raised once what it opened is closed). A signal during the
        start stops the registry once the start returns."""
        stopping = asyncio.Event()
        running = asyncio.get_running_loop()
        signals = (signal.SIGINT, signal.SIGTERM)
        for sig in signals:
            running.add_signal_handler(sig, stopping.set)
        waiter = asyncio.create_task(stopping.wait())
        try:
            if self.settings.registry_http_port is not None:
                self.serve_operations()  # first: a port in use fails before anything starts
            await self.start()
            done, _ = await asyncio.wait(
                [waiter, *self._tasks], return_when=asyncio.FIRST_COMPLETED
            )
            for task in done:
                if task is not waiter and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
        finally:
            waiter.cancel()
            await self.stop()
            for sig in signals:  # the caller's handling back (the CLI's process ends here)
                running.remove_signal_handler(sig)

    async def sweep_once(self, now: datetime | None = None) -> SweepOutcome:
        """Expire, tombstone and delete what is due at `now` (default: the clock), then relay.
        Each of the sweep's batches holds the consumer loop's gate, not the whole sweep."""
        outcome = await self.sweeper.sweep(now or self.clock())
        if self.metrics is not None:
            self.metrics.sessions_expired.inc(outcome.expired)
            self.metrics.sessions_purged.inc(outcome.purged)
            self.metrics.audit_purged.inc(outcome.audit_purged)
        await self._relay()
        return outcome

    def _count_sweep(self, outcome: str) -> None:
        if self.metrics is not None:
            self.metrics.sweeps.labels(outcome).inc()

    def serve_operations(self) -> int:
        """Serve /healthz, /readyz and /metrics (settings' host and port); return the port.
        With `registry_metrics` off there is no /metrics (404)."""
        exported = None if self.metrics is None else self.metrics.registry
        probes = Probes(self.alive, self.ready, self.refresh_metrics, exported)
        settings = self.settings
        port = settings.registry_http_port or 0
        self.operations = server = OperationsServer(probes, settings.registry_http_host, port)
        self._tasks.append(asyncio.create_task(server.serve(), name="registry-operations"))
        log.info("operations port: http://%s:%d/metrics", server.host, server.port)
        return server.port

    def alive(self) -> Verdict:
        """Whether the consumer loop runs and went round within `registry_alive_seconds`;
        alive while starting (migrations can take long: not a reason to restart)."""
        if not self._started:
            return Verdict(True, {"starting": True})
        consuming = [t for t in self._tasks if t.get_name() == "registry-consumer"]
        running = bool(consuming) and not consuming[0].done()
        idle = time.monotonic() - self.loop.alive_at
        ok = running and idle <= self.settings.registry_alive_seconds
        return Verdict(ok, {"consumer_running": running, "seconds_since_loop": round(idle, 3)})

    def ready(self) -> Verdict:
        """Whether the registry is caught up: its assignment received (none is caught up: a
        replica beyond the partitions is ready), every end known, total lag within
        `registry_ready_max_lag`."""
        lag = self.loop.lag()
        unknown = self.loop.unknown_lag() if self._started else 0
        blocker = self.loop.blocking()
        total = sum(lag.values())
        assigned = self.loop.assigned.is_set()
        ok = (
            self._started
            and self.alive().ok
            and assigned
            and unknown == 0
            and total <= self.settings.registry_ready_max_lag
        )
        detail = {
            "partitions_assigned": assigned,
            "partitions": len(self.loop.consumer.assignment()),
            "partitions_not_fetched": unknown,
            "lag": total,
            "max_lag": self.settings.registry_ready_max_lag,
            # partitions held at a batch whose CRC fails, and where (the runbook's first step)
            "held": [
                {"topic": tp.topic, "partition": tp.partition, "at": corrupt.position}
                for tp, corrupt in sorted(self.loop.held.items())
            ],
            # stored positions past their partition's end: skipped records, sweeps waiting
            "positions_past_end": [
                {"topic": key[0], "partition": key[1], "stored": position, "end": end}
                for key, (position, end) in sorted(self.loop.past_end.items())
            ],
            # the group's moment: sweeps expire nothing later (another instance's lag too)
            "sweeps_behind_seconds": round(self.sweep_behind_seconds(), 3),
            "sweeps_wait_for": None if blocker is None else dataclasses.asdict(blocker),
        }
        return Verdict(ok, detail)

    async def refresh_metrics(self) -> None:
        """Read the outbox's and the deferred terminations' backlog and oldest age for the
        metrics."""
        if self.metrics is None:
            return
        async with self.engine.connect() as conn:
            backlog, age = await outbox_level(conn)
            deferred, oldest = await deferred_level(conn, self.clock())
        self.metrics.outbox.backlog = backlog
        self.metrics.outbox.oldest_age_seconds = age
        self.metrics.deferred.backlog = deferred
        self.metrics.deferred.oldest_age_seconds = oldest

    async def _relay(self) -> None:
        sent = await self.relay.relay()
        if self.metrics is not None:
            self.metrics.outbox_published.inc(sent)

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
        # The ends, then the positions, then the outbox: a batch that moved the positions read
        # has its records in the outbox read after them, or sent already. (The outbox was read
        # first: a batch committed in between counted as applied with its revocations unsent.)
        ends = await self.loop.consumer.end_offsets(list(assigned))
        async with self.engine.connect() as conn:
            stored = await load_positions(conn, self.settings.consumer_group)
            if any(stored.get((tp.topic, tp.partition), 0) < end for tp, end in ends.items()):
                return False
            # a termination by a text filter taken from the topic and not applied yet
            if (await deferred_level(conn, self.clock()))[0]:
                return False
            return await outbox_size(conn) == 0

    async def _after_batch(self, outcome: IngestOutcome) -> None:
        if outcome.deferred:  # committed: the resolver reads it now
            self._wake_resolver()
        if outcome.published:
            await self._relay_quietly()

    async def _relay_quietly(self) -> None:
        try:
            await self._relay()
        except RETRYABLE as exc:  # the rows stay in the outbox; the next relay sends them
            if self.metrics is not None:
                self.metrics.outbox_relay_failures.inc()
            log.warning("outbox relay failed: %s", exc)

    def _wake_resolver(self) -> None:
        self._deferred_woken.set()

    def _owned_commands(self) -> set[int]:
        """The partitions of the commands topic assigned to this registry now."""
        assigned: set[TopicPartition] = self.loop.consumer.assignment()
        return {tp.partition for tp in assigned if tp.topic == self.topics.commands}

    async def resolve_deferred(self) -> ResolveOutcome:
        """Apply the terminations by a text filter waiting for this registry (the resolver's
        pass, `service_layer.deferred_terminations`)."""
        outcome = await self.deferred.resolve_all()
        if self.metrics is not None:
            self.metrics.commands_applied.inc(outcome.commands)
            self.metrics.sessions_terminated.inc(outcome.terminated)
        return outcome

    def _count_dead_letter(self, reason: str) -> None:
        """A deferred command's dead letter, counted once sent (`DeferredTerminations`): the
        pass's outcome, from which it was counted before, is lost when a later command of the
        same pass fails (found by a review, 2026-12-06)."""
        if self.metrics is not None:
            self.metrics.dead_letters.labels(reason_class(reason)).inc()

    async def _resolve_forever(self) -> None:
        """Resolve deferred terminations when a batch kept one or a rebalance brought
        partitions, and every `DEFERRED_TICK_SECONDS` (those a failed pass left)."""
        while True:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(DEFERRED_TICK_SECONDS):
                    await self._deferred_woken.wait()
            self._deferred_woken.clear()
            try:
                await self.resolve_deferred()
            except Exception as exc:  # the database away: the rows wait for the next pass
                log.warning(
                    "resolving deferred terminations failed, retried in %.0f s: %s",
                    DEFERRED_TICK_SECONDS,
                    escape_reason(str(exc)),
                    exc_info=not isinstance(exc, RETRYABLE),
                )

    async def _ask_ends_forever(self) -> None:
        """Keep the partitions' ends known from the broker, not only from the consumer's
        fetches, which stand still while the loop is stuck on a batch (`ConsumerLoop.lag`)."""
        while True:
            await asyncio.sleep(self.settings.registry_lag_refresh_seconds)
            try:
                await self.loop.ask_ends(asked_at=self.clock())
            except Exception as exc:  # the broker away, a rebalance: the last ends stand
                log.debug("asking the partitions' ends failed: %s", exc)

    def sweep_behind_seconds(self) -> float:
        """How far the moment the sweeper expires up to lags the clock (from the registry's
        making while no moment is known yet)."""
        through = self.loop.caught_up_at
        if through is None:
            return time.monotonic() - self._made_at
        return max(0.0, (self.clock() - through).total_seconds())

    def _warn_sweeps_behind(self, warned: bool) -> bool:
        """Say once an episode that sweeps lag the clock, and which partition they wait for."""
        behind = self.sweep_behind_seconds()
        if behind <= SWEEPS_BEHIND_WARNING_SECONDS:
            if warned:
                log.info("sweeps caught up with the clock again")
            return False
        if not warned:
            blocker = self.loop.blocking()
            if self.loop.past_end:
                waiting = ", ".join(
                    f"{topic} partition {partition}, its stored position {stored} past its end "
                    f"{end} (RegistryPositionPastEnd)"
                    for (topic, partition), (stored, end) in sorted(self.loop.past_end.items())
                )
            elif blocker is not None:
                waiting = (
                    f"{blocker.topic} partition {blocker.partition}, applied up to "
                    f"{blocker.applied} of {blocker.end}"
                )
            else:
                waiting = "the broker's or the database's answer"
            log.warning(
                "sweeps are %.0f s behind the clock: nothing later expires until every "
                "partition of the group is applied; waiting for %s",
                behind,
                escape_reason(waiting),
            )
        return True

    async def _sweep_forever(self) -> None:
        put_off = False
        warned = False
        while True:
            await asyncio.sleep(self.settings.sweep_interval_seconds)
            # Never past what is read: a session's activity among the unread records moves its
            # deadline, and an expiry is final (a termination read later passed over the
            # session as not active, and it was never revoked though alive on the platform).
            # A claim's kept end waits the same way for the creation behind it.
            through = self.loop.caught_up_at
            if through is None or self.clock() - through > self._ends_asked_every:
                # not waiting for `_ask_ends_forever`: at the start, or behind
                with contextlib.suppress(Exception):  # the broker away: the moment read stands
                    await self.loop.ask_ends(asked_at=self.clock())
                through = self.loop.caught_up_at
            warned = self._warn_sweeps_behind(warned)
            if through is None:
                if not put_off:
                    log.info("sweeps put off until the registry has caught up with its records")
                put_off = True
                continue
            put_off = False
            try:
                await self.sweep_once(min(self.clock(), through))
            except Exception:  # a failed sweep is retried on the next tick
                log.exception("expiry sweep failed")
                self._count_sweep("failed")
            else:
                self._count_sweep("ok")
