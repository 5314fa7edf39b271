"""A producer whose stop cannot deliver what it holds (the broker away) is abandoned within
its bound: what it held fails, its sender stops and its connections close. Before, the bound
cancelled `stop()` and left the producer running for the life of the process: one more per
broker outage in a gateway's activity reporter.

Runs on the test's OWN broker (`private_kafka`), which it stops.
"""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaTimeoutError

from fresh_topics import connection
from private_services import PrivateKafka  # type: ignore[import-not-found]  # tests/ dir
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_producer, stop_producer
from session_contracts.topics import Topics

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
