"""Publishing to Kafka: termination commands and session-settings records, awaited to the ack."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CorruptRecordException,
    InvalidTopicError,
    KafkaConnectionError,
    KafkaError,
    MessageSizeTooLargeError,
    ProducerClosed,
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import (
    connection_failure,
    describe_kafka_error,
    learn_partitions,
    new_producer,
    producer_stop_bound,
    start_producer,
    stop_producer,
    stops_under_way,
)
from session_contracts.models import SessionSettingsChanged, TerminateSessions
from session_contracts.settings import KafkaSettings
from session_contracts.tracing import inject_headers

log = logging.getLogger(__name__)


NOT_WRITTEN: tuple[type[Exception], ...] = (
    ProducerClosed,  # stopped before this record was handed to it
    MessageSizeTooLargeError,  # refused by the producer, or by the broker before its log
    RecordListTooLargeError,
    TopicAuthorizationFailedError,
    ClusterAuthorizationFailedError,
    InvalidTopicError,
    UnknownTopicOrPartitionError,
    CorruptRecordException,
)
"""What a record's send can fail with that says it was not written: a refusal before the
broker appended it. Anything else (a timeout, a lost connection, the producer abandoned while
the record was in flight, `NotEnoughReplicasAfterAppend`) may come after the broker wrote it.
Left: one of these arriving on the idempotent producer's retry of a batch an earlier attempt
wrote (an ACL revoked, or a leader with a smaller `message.max.bytes`, between the two) is
taken as not written."""


class BusUnavailable(Exception):
    """Kafka cannot take the record now; the request may be retried. `maybe_written`: it was
    sent and not acknowledged in time, and the broker may have written it before the answer
    was lost (the 503 says so, not "nothing was changed")."""

    def __init__(self, message: str, *, maybe_written: bool = False) -> None:
        super().__init__(message)
        self.maybe_written = maybe_written


class CommandBus(Protocol):
    """Where the admin API's records go (Kafka in production, a list in unit tests)."""

    @property
    def ready(self) -> bool: ...

    async def terminate(self, command: TerminateSessions) -> None: ...

    async def settings_changed(self, record: SessionSettingsChanged) -> None: ...


class KafkaBus:
    """An idempotent producer, started in the background so the API serves reads without Kafka.

    A record waits for Kafka's acknowledgement at most `publish_timeout` seconds. Past it the
    producer is given up (`stop_producer`): what it held fails, so every request waiting on it
    answers 503 and none of those records is sent later (one already on the wire may have been
    written before its answer was lost: the 503 says so). A new producer connects in the
    background meanwhile, and until it has, writes answer 503 at once (`/readyz`: degraded).
    Without the bound, aiokafka's idempotent producer retries for as long as the broker is
    away, and a termination's POST waited as long, then was applied whenever the broker came
    back.
    """

    def __init__(self, kafka: KafkaSettings, publish_timeout: float = 20.0) -> None:
        self._kafka = kafka
        self._topics = kafka.topics
        self._publish_timeout = publish_timeout
        self.failure: str | None = None
        """Why the last connection attempt failed (None: connected, or never tried)."""
        self._producer: AIOKafkaProducer | None = None
        self._starting: asyncio.Task[None] | None = None
        self._stopping: set[asyncio.Task[Any]] = set()
        """Producer stops under way (`stop_producer`'s `track`), which `stop` waits for."""

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
            producer: AIOKafkaProducer | None = None
            try:
                # No linger: a termination's command leaves at once (its POST waits for the
                # ack); concurrent POSTs still share requests while one is in flight. Inside
                # the try: it reads the mounted password, key and CA files, and one missing
                # for a moment (a rotation) ended this task for good (a review, stop 70)
                producer = new_producer(self._kafka, linger_ms=0)
                await ensure_topics(self._kafka)  # the settings topic above all
                # refuses one that found no brokers or got no producer id in time
                await start_producer(producer, self._publish_timeout)
                # aiokafka's bootstrap learns no topic: without this the first termination
                # after a start waited a metadata round trip, and one sent once the broker had
                # gone waited for metadata, not in the producer (session_contracts.kafka_clients)
                await learn_partitions(producer, [self._topics.commands, self._topics.settings])
            except Exception as exc:  # any start-up failure: retry, readyz says not ready
                cause = await _cause(self._kafka, exc)
                if cause != self.failure:  # one line per cause, not one per retry
                    log.warning("Kafka %s: %s (retrying)", self._kafka.describe(), cause)
                self.failure = cause
                if producer is not None:
                    with contextlib.suppress(Exception):
                        await producer.stop()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            except BaseException:  # cancelled (the API stopping): nothing of it left running
                if producer is not None:
                    await producer.stop()
                raise
            self._producer = producer
            self.failure = None
            return

    async def _replace(self, producer: AIOKafkaProducer) -> None:
        # it cannot deliver: its records fail at once
        await stop_producer(producer, 1.0, track=self._stopping)
        await self._connect()

    def _give_up(self, producer: AIOKafkaProducer, topic: str, cause: str) -> None:
        """Abandon `producer` (once, whichever request timed out first) and reconnect; one
        log line, naming the topic and the broker. A request that timed out on a producer
        already given up logs its own line."""
        if self._producer is not producer:
            log.warning("sending to %s: %s", topic, cause)
            return
        self._producer = None
        self.failure = cause
        log.warning(
            "sending to %s: %s; reconnecting to Kafka %s", topic, cause, self._kafka.describe()
        )
        self._starting = asyncio.create_task(
            self._replace(producer), name="admin-api-kafka-reconnect"
        )

    async def stop(self) -> None:
        """Stop connecting, flush and close the producer (what it cannot deliver within the
        publish timeout is given up: those requests answered 503)."""
        if self._starting is not None and not self._starting.done():
            self._starting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._starting
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await stop_producer(producer, self._publish_timeout)
        # a producer the cancelled reconnection was giving up, stopping on its own
        await stops_under_way(self._stopping, producer_stop_bound(1.0))

    async def _send(self, topic: str, key: bytes, value: bytes) -> None:
        producer = self._producer
        if producer is None:
            raise BusUnavailable(f"Kafka is not connected: {self.failure or 'connecting'}")
        # the trace context, when tracing is on: the registry continues the trace
        headers = inject_headers() or None
        try:
            async with asyncio.timeout(self._publish_timeout):
                await producer.send_and_wait(topic, value, key=key, headers=headers)
        except TimeoutError:
            cause = f"no acknowledgement within {self._publish_timeout:g} s"
            self._give_up(producer, topic, cause)
            # "withdrawn" alone was more than is known: a request already on the wire may have
            # been written before its answer was lost (docs/admin-api.md; a review, 2026-12-06)
            raise BusUnavailable(
                f"Kafka did not acknowledge the record: {cause}; it was withdrawn unless the "
                "broker wrote it before the answer was lost",
                maybe_written=True,
            ) from None
        except Exception as exc:  # the broker refused, or the producer was given up
            cause = describe_kafka_error(exc, "write", topic)
            # not Kafka's: a bug here or in aiokafka, with its traceback (taken as maybe
            # written: nothing says it was not)
            log.warning(
                "sending to %s: %s",
                topic,
                cause,
                exc_info=None if isinstance(exc, KafkaError) else exc,
            )
            # a record in flight when another request's timeout abandoned the producer fails
            # here too, and the broker may have written it (a review, stop 66)
            raise BusUnavailable(
                f"Kafka did not acknowledge the record: {cause}",
                maybe_written=not isinstance(exc, NOT_WRITTEN),
            ) from exc

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
