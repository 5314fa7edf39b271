"""Stopping Kafka clients while the broker is away (`session_contracts.kafka_clients`).

- A producer whose stop cannot deliver what it holds is abandoned within its bound: what it
  held fails, its sender stops and its connections close. Before, the bound cancelled
  `stop()` and left the producer running for the life of the process: one more per broker
  outage in a gateway's activity reporter.
- A consumer whose fetch requests wait out their retry backoff stops without raising.
  aiokafka's `stop()` re-raises the cancellation of such a request (aio-libs/aiokafka#647),
  which ended a registry's stop in a traceback and a gateway's follower with it. A follower
  whose loop fails at that moment restarts its consumer and goes on reading.
- A producer that learned its topics' partitions (`learn_partitions`) queues a send made once
  the broker is gone. aiokafka's bootstrap learns no topic, and such a send waited the request
  timeout for metadata, its record nowhere in the producer.

A test that stops its broker runs on its OWN (`private_kafka`); the others stop their clients
with the broker up, on the shared one, under fresh topics (a private broker costs a test about
6 s to start).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaConnectionError, KafkaTimeoutError, UnknownTopicOrPartitionError

from auth_gateway import follower as follower_module
from auth_gateway.activity import ActivityReporter
from auth_gateway.follower import CompactedTopicFollower
from fresh_topics import connection, read_records
from polling import until
from private_services import PrivateKafka
from session_contracts.codec import decode_event
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import (
    learn_partitions,
    new_consumer,
    new_producer,
    start_producer,
    stop_consumer,
    stop_producer,
    undelivered_batches,
)
from session_contracts.models import SessionCreated, SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher, created_event
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from unclosed_clients import no_kafka_client_left_unclosed

pytestmark = [pytest.mark.kafka, pytest.mark.slow]


async def test_a_producer_that_cannot_deliver_at_its_stop_is_abandoned_not_left_running(
    private_kafka: PrivateKafka,
) -> None:
    topics = Topics(prefix="abandon.", partitions=1)
    await ensure_topics(connection(private_kafka.bootstrap, topics))
    delivering = new_producer(connection(private_kafka.bootstrap), linger_ms=0)
    stuck = new_producer(
        connection(private_kafka.bootstrap), linger_ms=0, request_timeout_ms=120_000
    )
    await delivering.start()
    await stuck.start()
    await stuck.send_and_wait(topics.events, b"delivered", key=b"k")

    await delivering.send_and_wait(topics.events, b"delivered", key=b"k")
    assert await stop_producer(delivering, within=10) is True  # a broker there: a plain stop

    await private_kafka.stop()
    held = await stuck.send(topics.events, b"held", key=b"k")  # waits in the producer
    sender = stuck._sender.sender_task
    assert sender is not None and not sender.done()

    assert await stop_producer(stuck, within=1.0) is False
    assert held.done() and isinstance(held.exception(), KafkaTimeoutError)
    assert sender.done()  # no task left retrying the broker
    assert not stuck.client._conns  # no connection left open or reopened


async def _fetching_in_backoff(
    private_kafka: PrivateKafka, prefix: str
) -> tuple[AIOKafkaConsumer, list[asyncio.Task[Any]]]:
    """A consumer fetching a partition when its broker stops, with a fetch request that failed
    and waits out its retry backoff (30 s: it still waits when the consumer is stopped); the
    requests waiting."""
    topics = Topics(prefix=prefix, partitions=1)
    await ensure_topics(connection(private_kafka.bootstrap, topics))
    # Its leader answers first: the consumer's own offset lookup on a partition without one
    # yet waits out the same 30 s backoff (30 s of the suite's time, one run in two).
    assert await read_records(private_kafka.bootstrap, topics.events) == []
    consumer = new_consumer(connection(private_kafka.bootstrap), retry_backoff_ms=30_000)
    await consumer.start()
    tp = TopicPartition(topics.events, 0)
    consumer.assign([tp])
    await consumer.position(tp)  # fetching from its position
    await private_kafka.stop()
    async with asyncio.timeout(30):
        while not (waiting := _in_backoff(consumer)):
            await consumer.getmany(timeout_ms=200)
    return consumer, waiting


async def test_a_consumer_whose_fetches_wait_out_their_backoff_stops_without_raising(
    private_kafka: PrivateKafka,
) -> None:
    consumer, waiting = await _fetching_in_backoff(private_kafka, "fetching.")
    async with asyncio.timeout(10):
        await stop_consumer(consumer)  # returns: no CancelledError, no 30 s wait
    assert all(task.done() for task in waiting)
    assert not consumer._client._conns  # its connections closed


async def test_a_cancelled_task_stopping_its_consumer_in_finally_closes_it_and_ends_cancelled(
    private_kafka: PrivateKafka,
) -> None:
    """The caller is being cancelled already (its `finally` stops the consumer) when aiokafka's
    `stop()` raises a fetch request's cancellation of its own (#647): the cleanup `stop()` did
    not reach still runs, and the task still ends cancelled, by its own cancellation."""
    consumer, _ = await _fetching_in_backoff(private_kafka, "finally.")
    client = consumer._client
    assert client._sync_task is not None and not client._sync_task.done()
    stop = consumer.stop
    raised: list[type[BaseException] | None] = []

    async def recorded_stop() -> None:
        try:
            await stop()
        except BaseException as exc:
            raised.append(type(exc))
            raise
        raised.append(None)

    consumer.stop = recorded_stop
    entered = asyncio.Event()

    async def owner() -> None:
        try:
            entered.set()
            await asyncio.sleep(3600)
        finally:
            await stop_consumer(consumer)

    task = asyncio.create_task(owner())
    await entered.wait()
    task.cancel()
    async with asyncio.timeout(10):
        with pytest.raises(asyncio.CancelledError):
            await task
    assert raised == [asyncio.CancelledError]  # the moment was met: aiokafka's own, #647
    assert client._sync_task is None  # the client closed all the same


class _FailingInBackoff(CompactedTopicFollower):
    """Keeps the keys it reads. Once `armed`, its loop fails at the first look at the
    partitions made while one of its consumer's fetch requests waits out its retry backoff:
    the moment aiokafka's `stop()` re-raises that request's cancellation (#647). Records how
    that consumer's `stop()` ended (`failed_stop`; None: it returned)."""

    def __init__(self, kafka: KafkaSettings, topic: str) -> None:
        super().__init__(kafka, topic)
        self.keys: list[bytes | None] = []
        self.armed = False
        self.failed_stop: list[type[BaseException] | None] = []
        self._consumer: AIOKafkaConsumer | None = None
        self._failed_on: AIOKafkaConsumer | None = None

    @property
    def failed(self) -> bool:
        return self._failed_on is not None

    def apply(self, key: bytes | None, value: bytes | None) -> None:
        self.keys.append(key)

    async def _follow(self, consumer: AIOKafkaConsumer) -> None:
        self._consumer = consumer
        stop = consumer.stop

        async def recorded_stop() -> None:
            try:
                await stop()
            except BaseException as exc:
                if consumer is self._failed_on:
                    self.failed_stop.append(type(exc))
                raise
            if consumer is self._failed_on:
                self.failed_stop.append(None)

        consumer.stop = recorded_stop
        await super()._follow(consumer)

    def confirm(self, partitions: list[TopicPartition], at: dict[TopicPartition, float]) -> None:
        if self.armed and self._consumer is not None and _in_backoff(self._consumer):
            self.armed = False
            self._failed_on = self._consumer
            raise RuntimeError("injected: the follower's loop fails")
        super().confirm(partitions, at)


async def test_a_follower_whose_loop_fails_while_its_fetches_wait_out_their_backoff_goes_on(
    private_kafka: PrivateKafka, monkeypatch: pytest.MonkeyPatch
) -> None:
    topics = Topics(prefix="follow.", partitions=1)
    settings = connection(private_kafka.bootstrap, topics)
    await ensure_topics(settings)
    # the new partition's leader known first (its offsets read, retried at the usual 100 ms):
    # a follower consumer asking before the election waited its 30 s backoff below and was
    # not ready within the 30 s bound ("NotLeaderForPartitionError" fetching offsets, once
    # in a full run)
    assert await read_records(settings, topics.revocations) == []
    follower = _FailingInBackoff(settings, topics.revocations)

    def waiting_long(kafka: KafkaSettings, *topics: str, **options: Any) -> AIOKafkaConsumer:
        # The follower's fetches wait 100 ms after a failure; until the injected failure its
        # consumers' wait 30 s, so that the failure lands in one however slowly this runs.
        if not follower.failed:
            options["retry_backoff_ms"] = 30_000
        return new_consumer(kafka, *topics, **options)

    monkeypatch.setattr(follower_module, "new_consumer", waiting_long)
    following = asyncio.create_task(follower.run())
    try:
        async with asyncio.timeout(30):
            await follower.ready_event.wait()
        await private_kafka.stop()
        follower.armed = True

        async def stopped() -> bool:
            return bool(follower.failed_stop)

        await until(stopped, 30, "the follower's loop failed and its consumer stopped")
        # the moment was met: aiokafka's stop() raised the fetch request's cancellation...
        assert follower.failed_stop == [asyncio.CancelledError]
        await asyncio.sleep(0.5)
        assert not following.done()  # ...and the follower did not end with it

        await private_kafka.start()
        producer = new_producer(connection(private_kafka.bootstrap), linger_ms=0)
        await producer.start()
        try:
            await producer.send_and_wait(topics.revocations, b"after", key=b"acme/after")
        finally:
            await producer.stop()

        async def read() -> bool:
            return b"acme/after" in follower.keys

        # its next consumer reads on from where the failed one was
        await until(read, 60, "the record sent after the outage read")
        assert follower.keys == [b"acme/after"]
    finally:
        following.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await following


async def test_stopping_a_consumer_gives_way_to_the_callers_cancellation_and_still_ends(
    kafka_bootstrap: str,
) -> None:
    consumer = new_consumer(connection(kafka_bootstrap))
    await consumer.start()
    started, release = asyncio.Event(), asyncio.Event()
    stop = consumer.stop

    async def slow_stop() -> None:
        started.set()
        await release.wait()  # a stop that hangs until released
        await stop()

    consumer.stop = slow_stop
    stopping = asyncio.create_task(stop_consumer(consumer))
    await started.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping  # at once: the stop has not ended
    assert not await _stopped(consumer)
    release.set()
    # nobody awaits it now, and it still ends: nothing of the consumer retries the broker
    await until(lambda: _stopped(consumer), 10, "the stop its caller gave up on, ended")


async def _stopped(consumer: AIOKafkaConsumer) -> bool:
    """Nothing of `consumer` runs: its fetch task, its coordinator's task, its client's
    metadata task and connections."""
    client = consumer._client
    return (
        consumer._fetcher._fetch_task.done()
        and consumer._coordinator._reset_committed_task is None
        and client._sync_task is None
        and not any(conn.connected() for conn in client._conns.values())
    )


@pytest.mark.parametrize("steps", range(1, 7))  # at 0 stop_consumer never begins
async def test_a_cancellation_arriving_while_aiokafka_closes_its_fetcher_is_not_lost(
    topics: Topics, kafka_bootstrap: str, steps: int
) -> None:
    """aiokafka's `Fetcher.close` awaits its fetch task under `suppress(CancelledError)`: a
    cancellation of the task stopping the consumer that lands then was swallowed, stop()
    returned normally, and a gateway's follower cancelled at that moment (a service shutting
    down) ran on and never ended: a cluster test hung until its timeout. Cancelled after each
    of the first few steps of stop(), the caller is cancelled every time, and the stop still
    ends (a cancelled stop once left the fetch task retrying the broker for good)."""
    consumer = new_consumer(connection(kafka_bootstrap, topics))
    await consumer.start()
    consumer.assign([TopicPartition(topics.revocations, 0)])
    await asyncio.sleep(0.2)  # its fetch task is waiting on the broker
    stopping = asyncio.create_task(stop_consumer(consumer))
    for _ in range(steps):
        await asyncio.sleep(0)
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    await until(lambda: _stopped(consumer), 10, "the stop its caller gave up on, ended")


async def test_stop_consumer_in_the_cleanup_of_a_cancelled_task_lets_the_cleanup_finish(
    kafka_bootstrap: str,
) -> None:
    # a `finally` running because the task was cancelled calls stop_consumer: a cancellation
    # already on its way out is not raised again, so what the cleanup does next still runs
    consumer = new_consumer(connection(kafka_bootstrap))
    await consumer.start()
    cleaned: list[str] = []

    async def service() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            await stop_consumer(consumer)
            cleaned.append("after the consumer")

    task = asyncio.create_task(service())
    await asyncio.sleep(0.05)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert cleaned == ["after the consumer"]
    assert await _stopped(consumer)


async def test_an_event_whose_publish_was_bounded_during_an_outage_is_delivered_after_it(
    private_kafka: PrivateKafka,
) -> None:
    """What docs/contract.md tells platform services: bounding `publish` gives up the wait,
    not the event."""
    topics = Topics(prefix="bounded.", partitions=2)
    settings = connection(private_kafka.bootstrap, topics)
    await ensure_topics(settings)
    publisher = SessionEventPublisher(settings)
    await publisher.start()
    try:
        await publisher.publish(created("before"))
        await private_kafka.stop()
        for credential in ("during-1", "during-2"):
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(1):
                    await publisher.publish(created(credential))
        await private_kafka.start()
    finally:
        await publisher.stop()  # the broker is back: it delivers what it held
    published = [
        decode_event(r.value).session_id
        for r in await read_records(private_kafka.bootstrap, topics.events)
    ]
    expected = {session_handle("acme", c) for c in ("before", "during-1", "during-2")}
    assert set(published) == expected


async def test_a_first_publish_bounded_during_an_outage_is_delivered_after_it(
    private_kafka: PrivateKafka,
) -> None:
    """The same, when the broker goes away before the publisher's first event: aiokafka's
    bootstrap learns no topic, and the bounded publish was cut short waiting for the events
    topic's metadata, its event never queued: lost (before `start` learned the partitions)."""
    topics = Topics(prefix="first.", partitions=2)
    settings = connection(private_kafka.bootstrap, topics)
    await ensure_topics(settings)
    await allocate_producer_ids(settings)
    publisher = SessionEventPublisher(settings)
    await publisher.start()
    try:
        await private_kafka.stop()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(1):
                await publisher.publish(created("during"))
        await private_kafka.start()
    finally:
        await publisher.stop()
    published = [
        decode_event(r.value).session_id
        for r in await read_records(private_kafka.bootstrap, topics.events)
    ]
    assert published == [session_handle("acme", "during")]


async def allocate_producer_ids(settings: KafkaSettings) -> None:
    """Start and stop a producer, so that the broker has its producer ids allocated: the next
    producer's start then gets one at its first request, and makes no metadata refresh that
    would teach it every topic (what `learn_partitions` must not rely on)."""
    warm = new_producer(settings)
    await warm.start()
    await warm.stop()


async def gone_after_bootstrap(producer: AIOKafkaProducer, broker: PrivateKafka) -> None:
    """Bootstrap `producer`, then stop its broker: its start (the bootstrap already done) then
    waits for a producer id (aiokafka's `Sender.start`) that no broker can give. The broker is
    stopped here, not inside the start, so that the start's bound never cuts its stop short."""
    await producer.client.bootstrap()
    await broker.stop()

    async def bootstrapped() -> None:
        return None

    producer.client.bootstrap = bootstrapped


async def test_a_producer_whose_broker_goes_after_its_bootstrap_is_refused_within_the_bound(
    private_kafka: PrivateKafka,
) -> None:
    producer = new_producer(connection(private_kafka.bootstrap))
    await gone_after_bootstrap(producer, private_kafka)
    async with asyncio.timeout(30):  # without the bound: the whole outage
        with pytest.raises(KafkaConnectionError, match="no producer id"):
            await start_producer(producer, 2.0)
    assert producer._closed and not producer.client._conns


async def test_the_activity_reporter_gets_past_a_producer_start_that_hangs(
    private_kafka: PrivateKafka,
) -> None:
    """The gateway broker-outage test's flake: a flush whose producer's start hung for ever
    sent nothing again and logged nothing. Now the start fails within the delivery bound,
    the activity stays pending, and a later producer delivers it once the broker is back."""
    topics = Topics(prefix="hung-start.", partitions=1)
    await ensure_topics(connection(private_kafka.bootstrap, topics))
    first = new_producer(connection(private_kafka.bootstrap))
    await gone_after_bootstrap(first, private_kafka)  # the first one's broker goes away
    made: list[AIOKafkaProducer] = []

    def factory() -> AIOKafkaProducer:
        made.append(first if not made else new_producer(connection(private_kafka.bootstrap)))
        return made[-1]

    reporter = ActivityReporter(factory, topics.events, delivery_timeout_seconds=2.0)
    key = record_key("acme", session_handle("acme", "busy"))
    reporter.note(key, "10.0.0.1")
    async with asyncio.timeout(30):
        await reporter.flush()  # the start fails: the broker is away
    assert reporter.pending == 1 and reporter.sent == 0
    assert made[0]._closed

    await private_kafka.start()
    async with asyncio.timeout(60):
        while reporter.sent == 0:
            await reporter.flush()
            await asyncio.sleep(0.2)
    await reporter.stop()
    keys = [r.key for r in await read_records(private_kafka.bootstrap, topics.events)]
    assert keys == [key]


def created(credential: str) -> SessionCreated:
    return created_event(
        tenant_id="acme",
        credential=credential,
        user_id="u1",
        user_name="User One",
        session_type=SessionType.browser,
        ip_address="10.0.0.1",
        user_agent="test",
        policy=SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=600),
    )


def _in_backoff(consumer: AIOKafkaConsumer) -> list[asyncio.Task[Any]]:
    """The consumer's fetch requests that failed and wait out their retry backoff (aiokafka:
    `Fetcher._proc_fetch_request` asleep in its error handler), which its stop cancels; a
    request cancelled elsewhere (in `send`) or a position lookup returns quietly."""
    return [
        task
        for task in consumer._fetcher._pending_tasks
        if not task.done()
        and task.get_coro().__qualname__ == "Fetcher._proc_fetch_request"
        and getattr(task.get_coro().cr_await, "__qualname__", "") == "sleep"
    ]


async def test_a_producer_that_learned_its_topics_queues_a_send_made_once_the_broker_is_gone(
    private_kafka: PrivateKafka,
) -> None:
    topics = Topics(prefix="learned.", partitions=2)
    await ensure_topics(connection(private_kafka.bootstrap, topics))
    await allocate_producer_ids(connection(private_kafka.bootstrap))
    producer = new_producer(connection(private_kafka.bootstrap), linger_ms=0)
    await start_producer(producer, 30)
    await learn_partitions(producer, [topics.events])

    await private_kafka.stop()
    # queued at once; without the partitions learned it waited the 30 s request timeout for
    # metadata, the record nowhere in the producer, then failed
    async with asyncio.timeout(5):
        held = await producer.send(topics.events, b"held", key=b"k")
    assert not held.done() and undelivered_batches(producer)
    assert await stop_producer(producer, within=1.0) is False
    assert isinstance(held.exception(), KafkaTimeoutError)


async def test_learning_a_topic_the_broker_lacks_fails_naming_it(kafka_bootstrap: str) -> None:
    producer = new_producer(connection(kafka_bootstrap), request_timeout_ms=1_000)
    await start_producer(producer, 30)
    try:
        lacking = r"topic nowhere\.sessions\.events is not on the broker"
        with pytest.raises(UnknownTopicOrPartitionError, match=lacking):
            await learn_partitions(producer, ["nowhere.sessions.events"])
    finally:
        await producer.stop()


async def test_a_publisher_whose_topic_the_broker_lacks_fails_to_start_leaving_nothing_open(
    kafka_bootstrap: str,
) -> None:
    # `async with` calls no stop() when the start raised: the start closes its own producer
    settings = connection(kafka_bootstrap, Topics(prefix="nowhere.", partitions=1))
    settings = settings.model_copy(update={"kafka_request_timeout_ms": 1_000})
    with no_kafka_client_left_unclosed():
        publisher = SessionEventPublisher(settings)
        lacking = r"topic nowhere\.sessions\.events is not on the broker"
        with pytest.raises(UnknownTopicOrPartitionError, match=lacking):
            async with publisher:
                pass
        del publisher
