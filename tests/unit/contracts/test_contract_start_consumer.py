"""A consumer whose start fails is stopped: `session_contracts.kafka_clients.start_consumer`.

aiokafka leaves a consumer whose `start()` raised unclosed. The registry's commands started
theirs before the `try` that stops them, so a command run with the broker away left one behind,
which warned when collected, inside whichever test of the suite ran then (stop 73). No broker
here: nothing listens on the address these use.
"""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaConnectionError

from session_contracts.kafka_clients import new_consumer, start_consumer
from session_contracts.settings import KafkaSettings
from session_registry.service_layer.dead_letter_tools import LetterFilter, dead_letters
from session_registry.service_layer.session_log import session_records
from unclosed_clients import no_kafka_client_left_unclosed

NOBODY = "127.0.0.1:9"  # the discard port: refused


def _kafka() -> KafkaSettings:
    return KafkaSettings(kafka_bootstrap_servers=NOBODY, kafka_request_timeout_ms=1_000)


async def test_a_consumer_whose_start_failed_is_stopped() -> None:
    with no_kafka_client_left_unclosed():
        consumer = new_consumer(_kafka())
        with pytest.raises(KafkaConnectionError):
            await start_consumer(consumer)
        assert consumer._closed
        del consumer


async def test_a_consumer_whose_start_was_cancelled_is_stopped() -> None:
    with no_kafka_client_left_unclosed():
        consumer = new_consumer(_kafka())
        starting = asyncio.create_task(start_consumer(consumer))
        await asyncio.sleep(0)  # into the bootstrap
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting
        assert consumer._closed
        del consumer, starting


async def test_the_registry_commands_with_the_broker_away_leave_no_consumer_open() -> None:
    kafka = _kafka()
    with no_kafka_client_left_unclosed():
        with pytest.raises(KafkaConnectionError):
            async for _ in dead_letters(kafka, kafka.topics, LetterFilter()):
                pass
        with pytest.raises(KafkaConnectionError):
            async for _ in session_records(kafka, kafka.topics, "acme", "a" * 43):
                pass
