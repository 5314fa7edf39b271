"""Publishing to Kafka: termination commands and session-settings records, awaited to the ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError

from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import (
    connection_failure,
    describe_kafka_error,
    new_producer,
    start_producer,
)
from session_contracts.models import SessionSettingsChanged, TerminateSessions
from session_contracts.settings import KafkaSettings
from session_contracts.tracing import inject_headers

log = logging.getLogger(__name__)


class BusUnavailable(Exception):
    """Kafka cannot take the record now; the request may be retried."""


class CommandBus(Protocol):
    """Where the admin API's records go (Kafka in production, a list in unit tests)."""

    @property
    def ready(self) -> bool: ...

    async def terminate(self, command: TerminateSessions) -> None: ...

    async def settings_changed(self, record: SessionSettingsChanged) -> None: ...


class KafkaBus:
    """An idempotent producer, started in the background so the API serves reads without Kafka."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._kafka = kafka
        self._topics = kafka.topics
        self.failure: str | None = None
        """Why the last connection attempt failed (None: connected, or never tried)."""
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None

    @property
    def ready(self) -> bool:
        """Whether the producer is connected and records can be sent."""
        return self._producer is not None

    def start(self) -> None:
        """Connect in the background, retrying until the broker answers."""
        self._starting = asyncio.create_task(self._connect(), name="admin-api-kafka-connect")

    async def _connect(self) -> None:
        delay = 0.5
        while True:
            # No linger: a termination's command leaves at once (its POST waits for the ack);
            # concurrent POSTs still share requests while one is in flight.
            producer = new_producer(self._kafka, linger_ms=0)
            try:
                await ensure_topics(self._kafka)  # the settings topic above all
                await start_producer(producer)  # refuses one that found no brokers
            except Exception as exc:  # any start-up failure: retry, readyz says not ready
                cause = await _cause(self._kafka, exc)
                if cause != self.failure:  # one line per cause, not one per retry
                    log.warning("Kafka %s: %s (retrying)", self._kafka.describe(), cause)
                self.failure = cause
                with contextlib.suppress(Exception):
                    await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            self._producer = producer
            self.failure = None
            return

    async def stop(self) -> None:
        """Stop connecting, flush and close the producer."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
        if self._producer is not None:
            await self._producer.stop()
            self._producer = None

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        if self._producer is None:
            raise BusUnavailable("Kafka is not connected yet")
        try:
            # the trace context, when tracing is on: the registry continues the trace
            headers = inject_headers() or None
            await self._producer.send_and_wait(topic, value, key=key, headers=headers)
        except Exception as exc:  # the broker refused or timed out: the caller answers 503
            cause = describe_kafka_error(exc, "write", topic)
            log.warning("sending to %s: %s", topic, cause)
            raise BusUnavailable(f"Kafka did not acknowledge the record: {cause}") from exc

    async def terminate(self, command: TerminateSessions) -> None:
        """Publish a terminate command on `sessions.commands`, keyed `<tenant_id>/<command_id>`."""
        key = record_key(command.tenant_id, str(command.command_id))
        await self._send(self._topics.commands, key, encode(command))

    async def settings_changed(self, record: SessionSettingsChanged) -> None:
        """Publish a tenant's full settings on the compacted settings topic."""
        await self._send(self._topics.settings, record.tenant_id.encode(), encode(record))


async def _cause(kafka: KafkaSettings, exc: Exception) -> str:
    """What went wrong, named: aiokafka's "Unable to bootstrap" hides refused/TLS/SASL."""
    if isinstance(exc, KafkaConnectionError):
        return await connection_failure(kafka) or str(exc)
    return f"{type(exc).__name__}: {exc}"
