"""A registry whose start fails, or is cancelled, after its Kafka clients started: its stop
closes them, and `run_forever` stops it (on the real broker).

`stop()` closed the producer and the consumer only after a start that succeeded, so a start
failing past its producer's (a topic missing, the leftover relay failing, the consumer's start)
left the producer's sender and metadata tasks running, and a start cancelled while the consumer
waited for its assignment left the consumer's too; `run_forever` did not stop a registry whose
start failed at all, its operations port kept serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.errors import UnknownTopicOrPartitionError
from registry_helpers import registry_settings

from migrated import MigratedCopies
from session_contracts.topics import Topics
from session_registry import bootstrap
from session_registry.bootstrap import Registry

pytestmark = pytest.mark.kafka


def _absent_topics() -> Topics:
    """Topics under a prefix nothing created (the broker creates no topic by itself)."""
    return Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=3)


def _every_client_closed(registry: Registry) -> None:
    """Those its start never reached too: each warned, when collected, that it was never
    closed, inside whichever test ran then (one failed CI, stop 73)."""
    assert registry.guard is not None
    clients = [registry.producer, registry.loop.consumer, registry.guard.consumer]
    assert [client._closed for client in clients] == [True, True, True]


def _closed(client: AIOKafkaProducer | AIOKafkaConsumer, synchronizer: Any) -> None:
    """`client` stopped: closed, its metadata task ended, no connection open."""
    assert client._closed, "stop() left the client open"
    assert synchronizer is not None and synchronizer.done(), "its metadata task still runs"
    kafka = client.client if isinstance(client, AIOKafkaProducer) else client._client
    assert not any(conn.connected() for conn in kafka._conns.values())


async def test_a_start_failing_after_the_producer_started_leaves_nothing_running_after_stop(
    db_url: str, migrated: MigratedCopies, kafka_bootstrap: str
) -> None:
    await migrated.migrate(db_url)
    topics = _absent_topics()
    registry = Registry.from_settings(
        registry_settings(
            kafka_bootstrap, topics, db_url, create_topics=False, kafka_request_timeout_ms=1_000
        )
    )
    try:
        with pytest.raises(UnknownTopicOrPartitionError, match=topics.events):
            await registry.start()
        synchronizer = registry.producer.client._sync_task
        assert synchronizer is not None and not synchronizer.done()  # the producer started
    finally:
        await registry.stop()
    _closed(registry.producer, synchronizer)
    _every_client_closed(registry)


async def test_a_start_cancelled_while_the_consumer_starts_leaves_nothing_running_after_stop(
    db_url: str, migrated: MigratedCopies, topics: Topics, kafka_bootstrap: str
) -> None:
    """As for a caller giving up a start whose consumer waits for its assignment (a group
    coordinator away): the consumer had bootstrapped, its metadata task running."""
    await migrated.migrate(db_url)
    registry = Registry.from_settings(registry_settings(kafka_bootstrap, topics, db_url))
    consumer = registry.loop.consumer
    waiting = asyncio.Event()

    async def wait_for_ever() -> None:  # where the consumer's start waits, once bootstrapped
        waiting.set()
        await asyncio.Event().wait()

    consumer._wait_topics = wait_for_ever
    starting = asyncio.create_task(registry.start())
    try:
        async with asyncio.timeout(30):
            await waiting.wait()
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        consumed = consumer._client._sync_task
        produced = registry.producer.client._sync_task
        assert consumed is not None and not consumed.done()
    finally:
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await starting
        await registry.stop()
    _closed(consumer, consumed)
    _closed(registry.producer, produced)
    _every_client_closed(registry)


async def test_run_forever_stops_a_registry_whose_start_failed(
    db_url: str, migrated: MigratedCopies, kafka_bootstrap: str
) -> None:
    """Its operations port (served first, so that a port in use fails before anything
    starts) closes, and its producer with it; the start's error is what `run_forever` raises."""
    await migrated.migrate(db_url)
    topics = _absent_topics()
    registry = Registry.from_settings(
        registry_settings(
            kafka_bootstrap,
            topics,
            db_url,
            create_topics=False,
            kafka_request_timeout_ms=1_000,
            registry_http_port=0,
        )
    )
    with pytest.raises(UnknownTopicOrPartitionError, match=topics.events):
        await registry.run_forever()
    assert registry.operations is not None
    with pytest.raises(ConnectionRefusedError):
        await asyncio.open_connection(registry.operations.host, registry.operations.port)
    _every_client_closed(registry)


def _unstarted(db_url: str) -> Registry:
    """A registry never started, whose broker nobody listens on."""
    return Registry.from_settings(registry_settings("127.0.0.1:9", _absent_topics(), db_url))


def _disposal_recorded(
    registry: Registry, monkeypatch: pytest.MonkeyPatch, order: list[str]
) -> None:
    """`registry`'s database pool, when closed, says so in `order`."""
    dispose = registry.store.dispose

    async def recorded() -> None:
        order.append("disposed")
        await dispose()

    monkeypatch.setattr(registry.store, "dispose", recorded)


async def test_a_stop_whose_steps_fail_still_closes_the_rest_and_raises_the_first(
    db_url: str,
    migrated: MigratedCopies,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The first error a step of `stop()` raised ended it: the producer and the database
    pool were left open (a review, stop 73). Each step now runs; the first error reaches the
    caller, and a later one is logged, not lost."""
    await migrated.migrate(db_url)
    registry = _unstarted(db_url)
    registry._consuming = True  # as after a start that reached the consumer

    async def failing(consumer: AIOKafkaConsumer, **named: Any) -> None:
        raise RuntimeError("the consumer's stop failed")

    monkeypatch.setattr(bootstrap, "stop_consumer", failing)
    disposed: list[bool] = []
    dispose = registry.store.dispose

    async def recorded() -> None:
        disposed.append(True)
        await dispose()
        raise OSError("the pool's close failed too")

    monkeypatch.setattr(registry.store, "dispose", recorded)
    with pytest.raises(RuntimeError, match="the consumer's stop failed"):
        await registry.stop()
    assert registry.producer._closed and registry.guard is not None
    assert registry.guard.consumer._closed
    assert disposed == [True]
    assert "stopping the registry: recorded failed too" in caplog.text
    assert "the pool's close failed too" in caplog.text


async def test_a_stop_cancelled_while_closing_raises_at_once_and_the_rest_still_closes(
    db_url: str, migrated: MigratedCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bound on the stop (its caller cancelled) either ended it there, the steps after never
    run, or (an exit stack, a first fix) ran them all in the cancelled caller, past its bound
    (a review, stop 73). They go on without the caller, and a stop called again waits for
    them."""
    await migrated.migrate(db_url)
    registry = _unstarted(db_url)
    registry._producing = True  # as after a start that reached the producer
    stopping_producer = asyncio.Event()

    async def slow(producer: AIOKafkaProducer, within: float, **named: Any) -> bool:
        stopping_producer.set()
        await asyncio.Event().wait()  # as a broker away holds it, up to its bound
        return False

    monkeypatch.setattr(bootstrap, "stop_producer", slow)
    disposing, release, disposed = asyncio.Event(), asyncio.Event(), asyncio.Event()
    dispose = registry.store.dispose

    calls: list[str] = []

    async def recorded() -> None:
        calls.append("dispose")
        disposing.set()
        await release.wait()  # a step that takes a while
        await dispose()
        disposed.set()

    monkeypatch.setattr(registry.store, "dispose", recorded)
    stopping = asyncio.create_task(registry.stop())
    async with asyncio.timeout(30):
        await stopping_producer.wait()
    stopping.cancel()
    async with asyncio.timeout(30):  # a bound on a hang: without it, until `release`
        with pytest.raises(asyncio.CancelledError):
            await stopping  # at once, the steps left not waited for
        await disposing.wait()  # they go on
    assert not disposed.is_set()
    release.set()
    async with asyncio.timeout(30):
        await registry.stop()  # waits for what the cancelled stop left, not doing it again
    assert disposed.is_set() and calls == ["dispose"]
    assert registry.loop.consumer._closed and registry.guard is not None
    assert registry.guard.consumer._closed


async def test_a_stop_cancelled_while_the_relay_drains_cancels_the_tasks_before_closing(
    db_url: str, migrated: MigratedCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Cancelled while it waited for a relay in flight, the stop had not cancelled its tasks,
    and what it left closed the pool under them (a review, stop 73)."""
    await migrated.migrate(db_url)
    registry = _unstarted(db_url)
    order: list[str] = []
    running = asyncio.Event()

    async def work() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            await asyncio.sleep(0.05)  # its cleanup takes a moment
            order.append("task ended")

    registry._tasks.append(asyncio.create_task(work(), name="registry-consumer"))
    _disposal_recorded(registry, monkeypatch, order)
    await running.wait()
    await registry.relay._lock.acquire()  # a relay in flight: the stop waits for it
    try:
        stopping = asyncio.create_task(registry.stop())
        await asyncio.sleep(0.05)
        assert not stopping.done()
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
    finally:
        registry.relay._lock.release()
    async with asyncio.timeout(30):
        await registry.stop()
    assert order == ["task ended", "disposed"]
    assert registry._tasks == []


async def test_a_stop_cancelled_while_its_tasks_clean_up_neither_cuts_them_nor_leaves_it_open(
    db_url: str, migrated: MigratedCopies, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A stop cancelled while it waited for its tasks' cleanup cancelled them again, cutting
    that cleanup short (the consumer loop's rollback); and what it left, cancelled in turn
    (the loop's end), read tasks still running and closed nothing (a review, stop 73)."""
    await migrated.migrate(db_url)
    registry = _unstarted(db_url)
    order: list[str] = []
    running, cleaning, cleaned = asyncio.Event(), asyncio.Event(), asyncio.Event()
    release = asyncio.Event()

    async def work() -> None:
        running.set()
        try:
            await asyncio.Event().wait()
        finally:
            cleaning.set()
            await release.wait()  # a rollback under way; a second cancel would cut it here
            order.append("cleaned up")
            cleaned.set()

    registry._tasks.append(asyncio.create_task(work(), name="registry-consumer"))
    _disposal_recorded(registry, monkeypatch, order)
    await running.wait()
    stopping = asyncio.create_task(registry.stop())
    async with asyncio.timeout(30):
        await cleaning.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert registry._closing is not None
    registry._closing.cancel()  # as the loop's end would, were the tasks not cancelled too
    await asyncio.sleep(0.05)
    assert order == []  # the cleanup was not cut, and nothing closed under it
    release.set()
    async with asyncio.timeout(30):
        await cleaned.wait()
        await registry.stop()  # waits for what the cancelled stop left
    assert order == ["cleaned up", "disposed"]
    assert registry._tasks == [] and not registry._started
    assert registry.producer._closed and registry.loop.consumer._closed


class _SlowToStop:
    """A producer whose stop takes until `release` (its batches delivered to a slow broker)."""

    def __init__(self) -> None:
        self._closed = False
        self.stopping, self.release, self.stopped = (asyncio.Event() for _ in range(3))

    async def stop(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.stopping.set()
        await self.release.wait()
        self.stopped.set()


async def test_a_stop_called_again_returns_with_the_producer_stop_a_cancelled_one_began_ended(
    db_url: str, migrated: MigratedCopies
) -> None:
    """The producer's stop goes on without a cancelled caller, and its step was done: a stop
    called again returned with it still going on, past what a test module allows a task
    (a review, stop 73)."""
    await migrated.migrate(db_url)
    registry = _unstarted(db_url)
    await registry.producer.stop()  # never started: only marked closed; its stand-in below
    producer = _SlowToStop()
    registry.producer = cast(AIOKafkaProducer, producer)
    registry._producing = True  # as after a start that reached the producer
    stopping = asyncio.create_task(registry.stop())
    async with asyncio.timeout(30):
        await producer.stopping.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    again = asyncio.create_task(registry.stop())
    await asyncio.sleep(0.05)
    assert not again.done()  # waiting for the producer's stop
    producer.release.set()
    async with asyncio.timeout(30):
        await again
    assert producer.stopped.is_set()
