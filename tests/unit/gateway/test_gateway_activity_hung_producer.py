"""Producers that would hang instead of failing are refused or replaced.

See `auth_gateway.activity` and `session_contracts.kafka_clients.start_producer`.

aiokafka's producer can be left with no broker to ask after bootstrapping from a broker that
was still starting, and then its sends neither complete nor fail. These fakes stand for that
producer; the outage itself, on a real broker, is in the gateway's integration tests.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, cast

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from auth_gateway.activity import ActivityReporter
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_clients import start_producer, stop_producer, stops_under_way

A, B = (record_key("acme", session_handle("acme", n)) for n in "ab")


class Cluster:
    def __init__(self, brokers: int) -> None:
        self._brokers = brokers

    def brokers(self) -> set[int]:
        return set(range(self._brokers))


class Client:
    def __init__(self, brokers: int) -> None:
        self.cluster = Cluster(brokers)
        self.closed = False
        self.closing = asyncio.Event()

    async def close(self) -> None:
        self.closed = True
        self.closing.set()


class Accumulator:
    def __init__(self) -> None:
        self.failed: BaseException | None = None
        self._batches: dict[object, list[object]] = {}  # none held: the sends never left
        self._pending_batches: set[object] = set()

    def fail_all(self, exception: BaseException) -> None:
        self.failed = exception


class FakeProducer:
    """Delivers what it is sent, or (`hangs`) never completes a send nor its own stop.

    What `stop_producer` abandons a hung producer through is there too: its batches
    (`_message_accumulator`), its client; no sender task (`_sender`, as before `start`)."""

    def __init__(self, *, brokers: int = 1, hangs: bool = False, blocks: bool = False) -> None:
        self.client = Client(brokers)
        self._sender = None
        self._message_accumulator = Accumulator()
        self.hangs = hangs
        self.blocks = blocks  # `send` itself never returns (waiting for metadata, say)
        self.started = self.stopped = False
        self.delivered: list[bytes] = []

    async def start(self) -> None:
        self.started = True

    async def stop(self) -> None:
        if self.hangs:
            await asyncio.Event().wait()
        self.stopped = True

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        if self.blocks:
            await asyncio.Event().wait()
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        if not self.hangs:
            self.delivered.append(key)
            future.set_result(None)
        return future


class HungStop(FakeProducer):
    """Never delivers nor stops; says when its stop began."""

    def __init__(self) -> None:
        super().__init__(hangs=True)
        self.stopping = asyncio.Event()

    async def stop(self) -> None:
        self.stopping.set()
        await super().stop()


def reporter_over(producers: list[FakeProducer]) -> tuple[ActivityReporter, list[FakeProducer]]:
    made: list[FakeProducer] = []

    def factory() -> AIOKafkaProducer:
        made.append(producers.pop(0))
        return cast(Any, made[-1])

    return ActivityReporter(factory, "events", delivery_timeout_seconds=0.05), made


async def test_a_producer_that_started_without_brokers_is_stopped_and_another_tried() -> None:
    activity, made = reporter_over([FakeProducer(brokers=0), FakeProducer()])
    activity.note(A, None)
    await activity.flush()
    assert activity.pending == 1  # kept for the next flush, not handed to a blind producer
    assert made[0].stopped and made[0].delivered == []
    await activity.flush()
    assert made[1].delivered == [A]
    assert (activity.pending, activity.sent) == (0, 1)


async def test_a_send_that_never_completes_is_requeued_and_the_producer_replaced() -> None:
    activity, made = reporter_over([FakeProducer(hangs=True), FakeProducer()])
    activity.note(A, None)
    activity.note(B, None)
    await activity.flush()  # returns: the wait and the hung producer's stop are both bounded
    assert (activity.pending, activity.sent) == (2, 0)
    assert made[0].client.closed  # the replaced producer was abandoned, not left running
    await activity.flush()
    assert len(made) == 2
    assert made[1].delivered == [A, B]  # in the order noted
    assert (activity.pending, activity.sent) == (0, 2)


async def test_a_send_that_never_returns_is_bounded_and_the_producer_replaced() -> None:
    """aiokafka's `send` waits for its topic's metadata (or buffer room) up to the request
    timeout, far past the delivery bound; the flush holds no longer than the bound."""
    activity, made = reporter_over([FakeProducer(blocks=True), FakeProducer()])
    activity.note(A, None)
    async with asyncio.timeout(5):  # the bound is 0.05 s; without it, for ever
        await activity.flush()
    assert (activity.pending, activity.sent) == (1, 0)
    assert made[0].stopped  # replaced
    await activity.flush()
    assert made[1].delivered == [A]
    assert (activity.pending, activity.sent) == (0, 1)


async def test_stop_returns_although_the_producer_hangs() -> None:
    activity, made = reporter_over([FakeProducer(hangs=True)])
    activity.note(A, None)
    await activity.stop()
    assert made[0].stopped is False  # its stop never ended; the gateway's shutdown goes on
    # abandoned, not left running: what it held failed, its connections closed
    assert made[0]._message_accumulator.failed is not None
    assert made[0].client.closed


async def test_start_producer_refuses_and_stops_a_producer_that_found_no_brokers() -> None:
    blind = FakeProducer(brokers=0)
    with pytest.raises(KafkaConnectionError, match="no brokers"):
        await start_producer(cast(Any, blind), 1.0)
    assert blind.stopped
    healthy = FakeProducer()
    await start_producer(cast(Any, healthy), 1.0)
    assert healthy.started and not healthy.stopped


async def test_a_failed_batch_put_back_on_a_full_queue_drops_the_oldest_and_counts_them() -> None:
    """Requeued by `extendleft` on a bounded deque, a failed batch pushed the newest events
    noted meanwhile off the other end, uncounted."""
    c, d = (record_key("acme", session_handle("acme", n)) for n in "cd")
    factory_made: list[FakeProducer] = []

    def factory() -> AIOKafkaProducer:
        factory_made.append(FakeProducer(hangs=True))
        return cast(Any, factory_made[-1])

    activity = ActivityReporter(factory, "events", max_pending=3, delivery_timeout_seconds=0.2)
    activity.note(A, None)
    activity.note(B, None)
    flushing = asyncio.create_task(activity.flush())  # takes A and B, then hangs
    await asyncio.sleep(0.05)
    activity.note(c, None)
    activity.note(d, None)
    await flushing
    assert [key for key, _, _ in activity._pending] == [B, c, d]  # the oldest, A, went
    assert (activity.pending, activity.dropped) == (3, 1)


async def test_a_batch_in_flight_counts_as_pending_until_the_broker_has_it() -> None:
    """`GatewayActivityUnsent` reads the pending gauge: a scrape while a send hangs read 0
    (the batch had left the queue), so a producer whose sends never complete paged no one."""
    activity, made = reporter_over([FakeProducer(hangs=True), FakeProducer()])
    activity.note(A, None)
    activity.note(B, None)
    flushing = asyncio.create_task(activity.flush())  # takes A and B, then hangs to the bound
    await asyncio.sleep(0.01)
    assert activity.pending == 2  # in flight, not sent
    activity.note(record_key("acme", session_handle("acme", "c")), None)
    assert activity.pending == 3
    await flushing
    assert (activity.pending, activity.sent) == (3, 0)
    await activity.flush()
    assert (activity.pending, activity.sent) == (0, 3)
    assert made[1].delivered[:2] == [A, B]


class RefusingSends(FakeProducer):
    """Its sends fail at once; its stop waits for `release` (a producer being replaced)."""

    def __init__(self) -> None:
        super().__init__()
        self.stopping = asyncio.Event()
        self.release = asyncio.Event()

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        future.set_exception(KafkaConnectionError("refused"))
        return future

    async def stop(self) -> None:
        self.stopping.set()
        await self.release.wait()
        self.stopped = True


async def test_a_failed_batch_put_back_counts_once_while_its_producer_is_replaced() -> None:
    """Put back while it still counted as in flight, a failed batch read twice for as long as
    its producer took to stop (up to the delivery bound: 10 s by default), a review found."""
    refusing = RefusingSends()
    made: list[FakeProducer] = []

    def factory() -> AIOKafkaProducer:
        made.append(refusing)
        return cast(Any, refusing)

    activity = ActivityReporter(factory, "events", delivery_timeout_seconds=5)
    activity.note(A, None)
    activity.note(B, None)
    flushing = asyncio.create_task(activity.flush())
    await refusing.stopping.wait()  # the batch failed and is back; its producer is stopping
    assert (activity.pending, activity.sent) == (2, 0)
    refusing.release.set()
    await flushing
    assert (activity.pending, activity.sent, activity.dropped) == (2, 0, 0)


async def test_a_flush_cancelled_mid_send_keeps_its_batch_pending() -> None:
    """Cancelled (the gateway stopping, or stop()'s own bound), a batch in flight was neither
    put back nor counted: the shutdown said 0 unsent (a review, stop 73)."""
    activity, _ = reporter_over([FakeProducer(hangs=True)])
    activity._delivery_timeout = 5  # the sends hang; only the cancellation ends the flush
    activity.note(A, None)
    activity.note(B, None)
    flushing = asyncio.create_task(activity.flush())
    await asyncio.sleep(0.01)
    assert activity.pending == 2
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert (activity.pending, activity.sent, activity.dropped) == (2, 0, 0)
    assert [key for key, _, _ in activity._pending] == [A, B]


async def test_a_producer_stop_whose_caller_is_cancelled_still_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Cancelled in place, the stop left the producer marked closed with its sender and
    connections running, which no later stop could end (a review, stop 73)."""
    hung = HungStop()
    tracked: set[asyncio.Task[Any]] = set()
    with caplog.at_level(logging.WARNING, logger="session_contracts.kafka_clients"):
        stopping = asyncio.create_task(stop_producer(cast(Any, hung), 0.5, track=tracked))
        async with asyncio.timeout(5):
            await hung.stopping.wait()  # inside the bounded stop
        stopping.cancel()
        with pytest.raises(asyncio.CancelledError):
            await stopping
        assert len(tracked) == 1 and not hung.client.closed  # going on without its caller
        await stops_under_way(tracked, 5)  # abandoned at 0.5 s
        for _ in range(3):
            await asyncio.sleep(0)  # its done callbacks: what it says of its end
    assert hung.client.closed and hung._message_accumulator.failed is not None
    assert tracked == set()
    said = [r.getMessage() for r in caplog.records if r.name == "session_contracts.kafka_clients"]
    assert "stopping a Kafka producer: not delivered within its bound, abandoned" in said


async def test_stop_says_what_is_unsent_when_the_broker_refuses_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Only a stop cut by its bound said so; one whose producer could not start said nothing."""
    activity, _ = reporter_over([FakeProducer(brokers=0)])
    activity.note(A, None)
    with caplog.at_level(logging.WARNING, logger="auth_gateway.activity"):
        await activity.stop()
    assert "1 activity events unsent at shutdown" in caplog.text


class FailingSends(FakeProducer):
    """Its sends raise what no Kafka client raises: a bug."""

    async def send(self, topic: str, value: bytes, key: bytes) -> asyncio.Future[None]:
        raise RuntimeError("a bug in the send")


async def test_stop_closes_the_producer_when_its_flush_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    activity, made = reporter_over([FailingSends()])
    activity.note(A, None)
    with caplog.at_level(logging.WARNING, logger="auth_gateway.activity"):
        await activity.stop()  # the gateway's shutdown goes on
    assert made[0].stopped
    assert "sending the pending activity at shutdown failed" in caplog.text
    assert (activity.pending, activity.dropped) == (0, 1)


async def test_stop_returns_with_the_producer_a_cancelled_flush_was_replacing_stopped() -> None:
    """The gateway's stop cancels `run`, maybe while it gives up a producer: that stop goes on
    by itself, and the reporter's stop waits for it (a review, stop 73)."""
    hung = HungStop()
    activity, made = reporter_over([hung, FakeProducer()])
    activity._delivery_timeout = 1.0  # the sends' bound, then the hung stop's
    activity.note(A, None)
    flushing = asyncio.create_task(activity.flush())
    async with asyncio.timeout(5):
        await hung.stopping.wait()  # the batch failed and is back; its producer being given up
    flushing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await flushing
    assert not hung.client.closed
    await activity.stop()  # sends the batch with a new producer, then waits for the other
    assert hung.client.closed and hung._message_accumulator.failed is not None
    assert made[1].delivered == [A]


async def test_a_producer_stop_ending_as_its_caller_is_cancelled_is_still_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Its result ready and never read: the callback that says so was added only to a stop
    not yet ended (a review, stop 73)."""
    hung = HungStop()
    with caplog.at_level(logging.WARNING, logger="session_contracts.kafka_clients"):
        stopping = asyncio.create_task(stop_producer(cast(Any, hung), 0.05))
        async with asyncio.timeout(5):
            await hung.client.closing.wait()  # abandoned: its result comes in this iteration
        stopping.cancel()  # before the caller reads it
        with pytest.raises(asyncio.CancelledError):
            await stopping
        for _ in range(3):
            await asyncio.sleep(0)
    said = [r.getMessage() for r in caplog.records if r.name == "session_contracts.kafka_clients"]
    assert said == ["stopping a Kafka producer: not delivered within its bound, abandoned"]
