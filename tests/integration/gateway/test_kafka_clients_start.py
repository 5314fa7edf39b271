"""Starting a producer (`session_contracts.kafka_clients.start_producer`) on the real broker: a
start cancelled or failing after the producer's bootstrap leaves nothing of it running.

aiokafka's bootstrap starts the client's metadata task, and its `start()` then waits for the
producer id; a start ended there by a cancellation or an error left that task running for good
(a module of the gateway's tests failed so at its teardown: `_md_synchronizer` still running,
from an activity reporter whose producer was starting as its gateway stopped).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import ClusterAuthorizationFailedError

from auth_gateway.activity import ActivityReporter
from fresh_topics import connection
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_clients import new_producer, start_producer

pytestmark = pytest.mark.kafka


@dataclass
class AtProducerId:
    """Where a start waits for its producer id: reached, with the client's metadata task."""

    reached: asyncio.Event = field(default_factory=asyncio.Event)
    synchronizer: asyncio.Task[None] | None = None

    def left_nothing_running(self, producer: AIOKafkaProducer) -> None:
        assert self.synchronizer is not None, "the start never got past its bootstrap"
        assert self.synchronizer.done(), "the client's metadata task is still running"
        assert producer._closed
        assert not any(conn.connected() for conn in producer.client._conns.values())


def stop_at_the_producer_id(
    producer: AIOKafkaProducer, error: BaseException | None, at: AtProducerId | None = None
) -> AtProducerId:
    """Make `producer`'s start, once bootstrapped, wait for ever where it asks for its producer
    id (or raise `error` there); `at` (default: a new one) says when it gets there."""
    at = at or AtProducerId()

    async def sender_start() -> None:
        at.synchronizer = producer.client._sync_task  # the bootstrap started it
        at.reached.set()
        if error is not None:
            raise error
        await asyncio.Event().wait()

    producer._sender.start = sender_start
    return at


async def test_a_producer_start_cancelled_after_its_bootstrap_leaves_nothing_running(
    kafka_bootstrap: str,
) -> None:
    producer = new_producer(connection(kafka_bootstrap))
    at = stop_at_the_producer_id(producer, None)
    starting = asyncio.create_task(start_producer(producer, 60))
    async with asyncio.timeout(30):
        await at.reached.wait()
    assert at.synchronizer is not None and not at.synchronizer.done()
    starting.cancel()
    with pytest.raises(asyncio.CancelledError):
        await starting
    at.left_nothing_running(producer)


async def test_a_producer_start_failing_after_its_bootstrap_leaves_nothing_running(
    kafka_bootstrap: str,
) -> None:
    """As for a principal the broker refuses a producer id (no IdempotentWrite on the
    cluster). The gateway's reporter and the admin API's bus stop such a producer themselves;
    `start_producer` now leaves nothing running whatever its caller does."""
    producer = new_producer(connection(kafka_bootstrap))
    at = stop_at_the_producer_id(producer, ClusterAuthorizationFailedError())
    with pytest.raises(ClusterAuthorizationFailedError):
        async with asyncio.timeout(30):
            await start_producer(producer, 60)
    at.left_nothing_running(producer)


async def test_a_gateway_stopping_as_its_activity_producer_starts_leaves_nothing_running(
    kafka_bootstrap: str,
) -> None:
    """The case met in a full run: the gateway's stop cancels its activity reporter while the
    reporter's producer is starting (activity noted just before)."""
    made: list[AIOKafkaProducer] = []
    at = AtProducerId()

    def factory() -> AIOKafkaProducer:
        made.append(new_producer(connection(kafka_bootstrap)))
        stop_at_the_producer_id(made[-1], None, at)
        return made[-1]

    reporter = ActivityReporter(factory, "activity-never-sent", flush_seconds=0.01)
    reporter.note(record_key("acme", session_handle("acme", "s1")), "10.0.0.1")
    running = asyncio.create_task(reporter.run())
    async with asyncio.timeout(30):
        await at.reached.wait()
    running.cancel()  # as `SessionGateway.stop` does
    with pytest.raises(asyncio.CancelledError):
        await running
    (producer,) = made
    at.left_nothing_running(producer)
