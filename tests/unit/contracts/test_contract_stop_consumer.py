"""A consumer's stop that its caller gave up on still ends, and says if it fails.

See `session_contracts.kafka_clients.stop_consumer`. The fake stands for a consumer whose
`stop()` is slow; the real consumer, on a real broker, is in
`tests/integration/gateway/test_kafka_clients_broker_away.py`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import cast

import pytest
from aiokafka import AIOKafkaConsumer

from session_contracts.kafka_clients import stop_consumer


class SlowStop:
    """A consumer whose stop() waits for `release`, then ends as `outcome` says."""

    def __init__(self, outcome: BaseException | None) -> None:
        self.release = asyncio.Event()
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self._outcome = outcome

    async def stop(self) -> None:
        self.started.set()
        await self.release.wait()
        self.ended.set()
        if self._outcome is not None:
            raise self._outcome


async def _cancelled_mid_stop(consumer: SlowStop) -> None:
    stopping = asyncio.create_task(stop_consumer(cast(AIOKafkaConsumer, consumer)))
    await consumer.started.wait()
    stopping.cancel()
    with pytest.raises(asyncio.CancelledError):
        await stopping
    assert not consumer.ended.is_set()  # the caller went at once
    consumer.release.set()
    async with asyncio.timeout(10):  # a bound on a hang, not a speed claim
        await consumer.ended.wait()
    for _ in range(3):
        await asyncio.sleep(0)  # its done callbacks


async def test_a_stop_failing_after_its_caller_left_is_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.ERROR, logger="session_contracts.kafka_clients"):
        await _cancelled_mid_stop(SlowStop(RuntimeError("the broker said no")))
    said = [
        (r.getMessage(), r.exc_info[1] if r.exc_info else None)
        for r in caplog.records
        if r.name == "session_contracts.kafka_clients"
    ]
    assert [message for message, _ in said] == [
        "stopping a Kafka consumer failed: RuntimeError('the broker said no')"
    ]
    assert isinstance(said[0][1], RuntimeError)


async def test_a_stop_ending_well_after_its_caller_left_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    with caplog.at_level(logging.DEBUG, logger="session_contracts.kafka_clients"):
        await _cancelled_mid_stop(SlowStop(None))
    assert [r for r in caplog.records if r.name == "session_contracts.kafka_clients"] == []


async def test_a_failing_stop_awaited_to_its_end_raises_to_the_caller_and_is_not_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    consumer = SlowStop(RuntimeError("the broker said no"))
    consumer.release.set()
    with (
        caplog.at_level(logging.ERROR, logger="session_contracts.kafka_clients"),
        pytest.raises(RuntimeError, match="the broker said no"),
    ):
        await stop_consumer(cast(AIOKafkaConsumer, consumer))
    await asyncio.sleep(0)
    assert [r for r in caplog.records if r.name == "session_contracts.kafka_clients"] == []
