"""A `SessionEventPublisher` holds a Kafka producer only between start() and stop().

Made in its constructor, the producer of a publisher built and never started (a service built
and not served: tests, a command that only checks its settings), or whose start failed, was
never closed, and aiokafka warned so at exit ("Unclosed AIOKafkaProducer"). No broker here:
nothing listens on the address these use, and publishing to a real one is in the integration
tests.
"""

from __future__ import annotations

import pytest
from aiokafka.errors import KafkaConnectionError

from session_contracts.publisher import SessionEventPublisher, activity_event
from session_contracts.settings import KafkaSettings
from unclosed_clients import no_kafka_client_left_unclosed

NOBODY = "127.0.0.1:9"  # the discard port: refused


def _settings() -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap_servers=NOBODY, kafka_request_timeout_ms=2000)


async def test_a_publisher_built_and_never_started_leaves_no_producer_to_close() -> None:
    with no_kafka_client_left_unclosed():
        publisher = SessionEventPublisher(_settings())
        del publisher


async def test_a_publisher_whose_start_failed_leaves_no_producer_open() -> None:
    with no_kafka_client_left_unclosed():
        publisher = SessionEventPublisher(_settings())
        with pytest.raises(KafkaConnectionError):
            await publisher.start()
        await publisher.stop()  # nothing to stop: no error either
        del publisher


async def test_publishing_before_start_says_to_start_it() -> None:
    publisher = SessionEventPublisher(_settings())
    event = activity_event(tenant_id="acme", credential="a-credential-of-enough-length")
    with pytest.raises(RuntimeError, match=r"not started: call start\(\), or use `async with`"):
        await publisher.publish(event)
    with pytest.raises(RuntimeError, match="not started"):
        await publisher.publish_many([event])
