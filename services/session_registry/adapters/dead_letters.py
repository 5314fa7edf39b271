"""Records that are not valid contract messages, parked on `sessions.events.dlq`.

A dead letter keeps the original key, value and headers, and adds headers naming why and where
it came from (the style of Kafka Connect's error headers):

- `dlq.reason`: the decoder's message, e.g. "unknown event type 'session.renamed'", with
  control and bidirectional characters escaped and at most 1024 characters (`escape_reason`)
- `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset`: the original position
- `dlq.consumer`: the consumer (group) that refused it
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer

from session_contracts.escaping import escape_reason

REASON = "dlq.reason"
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
CONSUMER = "dlq.consumer"


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused record, with the reason and its original position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]
    reason: str

    def dlq_headers(self, consumer: str) -> list[tuple[str, bytes]]:
        """The original headers followed by the dead-letter headers: last, so that where a
        producer sent `dlq.*` headers of its own, the registry's are the ones read
        (`dead_letter_tools.read_letter` takes the last of each name)."""
        return [
            *self.headers,
            (REASON, escape_reason(self.reason).encode()),
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
            (CONSUMER, consumer.encode()),
        ]


class DeadLetterSink(Protocol):
    """Where refused records go; `send` returns once they are durable."""

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Make the letters durable."""
        ...


class KafkaDeadLetters:
    """Publishes dead letters to the DLQ topic and waits for the broker's acknowledgement."""

    def __init__(self, producer: AIOKafkaProducer, topic: str, consumer: str) -> None:
        self._producer = producer
        self._topic = topic
        self._consumer = consumer

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Publish and wait for every acknowledgement."""
        futures = [
            await self._producer.send(
                self._topic,
                letter.value,
                key=letter.key,
                headers=letter.dlq_headers(self._consumer),
            )
            for letter in letters
        ]
        await asyncio.gather(*futures)


class CountingDeadLetters:
    """Counts dead letters without publishing them (a rebuild: they are on the DLQ already)."""

    def __init__(self) -> None:
        self.count = 0

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        """Count them."""
        self.count += len(letters)
