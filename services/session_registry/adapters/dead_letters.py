"""Records that are not valid contract messages, parked on `sessions.events.dlq`.

A dead letter keeps the original key, value and headers, and adds headers naming why and where
it came from (the style of Kafka Connect's error headers):

- `dlq.reason`: the decoder's message, e.g. "unknown event type 'session.renamed'", with
  control and bidirectional characters escaped and at most 1024 characters (`escape_reason`)
- `dlq.source.topic`, `dlq.source.partition`, `dlq.source.offset`: the original position
- `dlq.consumer`: the consumer (group) that refused it

A record too large to copy whole is cut, so that its dead letter always fits in a request:
the broker checks a batch's size compressed, so a gzip record of 5 MB of zeros (5 KB on the
wire) was taken, refused by the decoder (past `MAX_RECORD_BYTES`), and its dead letter, sent
uncompressed, was refused by the producer (`MessageSizeTooLargeError`, a Kafka error the
registry waits out and retries): the partition stalled for good. Key and value keep their
first `CUT_AT` bytes (256 KiB: four times what the decoder reads, so nothing of a contract
message is lost), the original headers as many as fit in as many bytes, and headers say what
was cut (`dlq.value.size`, `dlq.key.size`: the original size in bytes; `dlq.headers.dropped`:
how many headers were left out). The whole record stays on its source topic, at
`dlq.source.*`, for its retention.

A record with neither key nor value (a Java producer may write one) is dead-lettered with an
empty value and `dlq.value.null`: aiokafka's producer refuses a record with neither, and the
assertion it raised stopped the registry's consumer task, for every tenant, at each restart.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from aiokafka import AIOKafkaProducer

from session_contracts.codec import MAX_RECORD_BYTES
from session_contracts.escaping import escape_reason
from session_contracts.models import TerminateSessions
from session_contracts.tracing import RecordHeaders

REASON = "dlq.reason"
SOURCE_TOPIC = "dlq.source.topic"
SOURCE_PARTITION = "dlq.source.partition"
SOURCE_OFFSET = "dlq.source.offset"
CONSUMER = "dlq.consumer"
VALUE_SIZE = "dlq.value.size"
KEY_SIZE = "dlq.key.size"
HEADERS_DROPPED = "dlq.headers.dropped"
VALUE_NULL = "dlq.value.null"
CUT_AT = 4 * MAX_RECORD_BYTES
"""The bytes of a dead letter's key, of its value, and of its original headers (names and
values) kept: three times this and the `dlq.*` headers fit in the producer's 1 MiB requests
and the broker's default `max.message.bytes`."""

Header = tuple[str, bytes | None]


def copied_headers(headers: RecordHeaders | None) -> tuple[Header, ...]:
    """A consumed record's headers as bytes; a header without a value stays without one
    (`bytes(None)` raised on it, and one such record stopped the registry for good)."""
    return tuple((name, None if value is None else bytes(value)) for name, value in headers or ())


def header_size(header: Header) -> int:
    """What a header counts for against `CUT_AT`: its name and value, and 10 bytes for the two
    lengths the record holds (so that a record of many empty headers is bounded too)."""
    name, value = header
    return len(name.encode()) + (0 if value is None else len(value)) + 10


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """A refused record, with the reason and its original position."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[Header, ...]
    reason: str
    given_up: TerminateSessions | None = None
    """The termination command whose application failed by itself (decoded): the batch that
    sends this letter records it failed (`command_store.record_failed`)."""

    def sent_key(self) -> bytes | None:
        """The key as the dead letter carries it: cut to `CUT_AT` bytes."""
        return None if self.key is None else self.key[:CUT_AT]

    def sent_value(self) -> bytes | None:
        """The value as the dead letter carries it: cut to `CUT_AT` bytes; empty for a record
        with neither key nor value (`VALUE_NULL` says so)."""
        if self.value is None:
            return b"" if self.key is None else None
        return self.value[:CUT_AT]

    def dlq_headers(self, consumer: str) -> list[Header]:
        """The original headers (as many as fit in `CUT_AT` bytes) followed by the dead-letter
        headers: last, so that where a producer sent `dlq.*` headers of its own, the
        registry's are the ones read (`dead_letter_tools.read_letter` takes the last of each
        name). What was cut is said by `dlq.value.size`, `dlq.key.size` and
        `dlq.headers.dropped`."""
        kept: list[Header] = []
        room = CUT_AT
        for header in self.headers:
            room -= header_size(header)
            if room < 0:
                break
            kept.append(header)
        dlq: list[Header] = [
            (REASON, escape_reason(self.reason).encode()),
            (SOURCE_TOPIC, self.topic.encode()),
            (SOURCE_PARTITION, str(self.partition).encode()),
            (SOURCE_OFFSET, str(self.offset).encode()),
            (CONSUMER, consumer.encode()),
        ]
        if self.value is not None and len(self.value) > CUT_AT:
            dlq.append((VALUE_SIZE, str(len(self.value)).encode()))
        if self.key is not None and len(self.key) > CUT_AT:
            dlq.append((KEY_SIZE, str(len(self.key)).encode()))
        if len(kept) < len(self.headers):
            dlq.append((HEADERS_DROPPED, str(len(self.headers) - len(kept)).encode()))
        if self.value is None and self.key is None:
            dlq.append((VALUE_NULL, b"1"))
        return [*kept, *dlq]


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
                letter.sent_value(),
                key=letter.sent_key(),
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
