"""One polled batch, exactly once: fence, dead-letter, project, store positions, in one transaction.

The stored position is the truth. Records below it were applied already (a redelivery after a
crash, or a partition that moved to another registry and back) and are skipped; the new
positions are written in the same transaction as the rows they produced.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import DecodeError, decode_command, decode_event
from session_contracts.models import SessionEvent, TerminateSessions
from session_registry.adapters.dead_letters import DeadLetter, DeadLetterSink
from session_registry.adapters.positions import lock_positions, save_positions
from session_registry.service_layer.projection import Outcome, Projector

TopicPartitionKey = tuple[str, int]


class Record(Protocol):
    """What the ingestor needs of a Kafka record (aiokafka's ConsumerRecord has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: Sequence[tuple[str, bytes]]


@dataclass
class Decoded:
    """A batch's records of one partition, decoded (outside the transaction)."""

    offsets: list[int] = field(default_factory=list)
    messages: list[SessionEvent | TerminateSessions | DeadLetter] = field(default_factory=list)


@dataclass
class IngestOutcome(Outcome):
    """What one batch did, with the positions it stored."""

    dead_letters: int = 0
    skipped: int = 0
    positions: dict[TopicPartitionKey, int] = field(default_factory=dict)


def _dead_letter(record: Record, error: DecodeError) -> DeadLetter:
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=tuple((name, bytes(value)) for name, value in record.headers or ()),
        reason=error.reason,
    )


class Ingestor:
    """Applies polled batches to the read model under a consumer name."""

    def __init__(
        self,
        store: Store,
        projector: Projector,
        consumer: str,
        dead_letters: DeadLetterSink,
        clock: Callable[[], datetime],
    ) -> None:
        self._store = store
        self._projector = projector
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._clock = clock
        self._commands_topic = projector.topics.commands

    def decode(self, batch: Mapping[Any, Sequence[Record]]) -> dict[TopicPartitionKey, Decoded]:
        """Decode every record; a bad one becomes a dead letter in its place."""
        decoded: dict[TopicPartitionKey, Decoded] = {}
        for records in batch.values():
            self._decode_into(decoded, records)
        return decoded

    async def decode_yielding(
        self, batch: Mapping[Any, Sequence[Record]], every: int = 2000
    ) -> dict[TopicPartitionKey, Decoded]:
        """`decode`, letting other tasks run every `every` records.

        While a batch is decoded the previous one is being written: yielding lets its writer
        send the next statement, so the database works while Python decodes.
        """
        decoded: dict[TopicPartitionKey, Decoded] = {}
        for records in batch.values():
            for start in range(0, len(records), every):
                self._decode_into(decoded, records[start : start + every])
                await asyncio.sleep(0)
        return decoded

    def _decode_into(
        self, decoded: dict[TopicPartitionKey, Decoded], records: Sequence[Record]
    ) -> None:
        for record in records:
            part = decoded.setdefault((record.topic, record.partition), Decoded())
            part.offsets.append(record.offset)
            try:
                if record.topic == self._commands_topic:
                    part.messages.append(decode_command(record.value))
                else:
                    part.messages.append(decode_event(record.value))
            except DecodeError as error:
                part.messages.append(_dead_letter(record, error))

    async def ingest(self, batch: Mapping[Any, Sequence[Record]]) -> IngestOutcome:
        """Apply one batch exactly once; return what it did."""
        return await self.apply(self.decode(batch))

    async def apply(self, decoded: dict[TopicPartitionKey, Decoded]) -> IngestOutcome:
        """Apply decoded records in one transaction (retried whole on deadlock)."""
        if not decoded:
            return IngestOutcome()
        return await UnitOfWork(self._store).run(lambda uow: self._apply(uow, decoded))

    async def _apply(
        self, uow: UnitOfWork, decoded: dict[TopicPartitionKey, Decoded]
    ) -> IngestOutcome:
        stored = await lock_positions(uow, self._consumer, {t for t, _ in decoded})
        events: list[SessionEvent] = []
        commands: list[TerminateSessions] = []
        letters: list[DeadLetter] = []
        skipped = 0
        positions: dict[TopicPartitionKey, int] = {}
        for tp, part in decoded.items():
            start = stored.get(tp, 0)
            positions[tp] = max(start, part.offsets[-1] + 1)
            for offset, message in zip(part.offsets, part.messages, strict=True):
                if offset < start:
                    skipped += 1
                elif isinstance(message, DeadLetter):
                    letters.append(message)
                elif isinstance(message, TerminateSessions):
                    commands.append(message)
                else:
                    events.append(message)
        if letters:
            # durable on the DLQ before the position moves past them
            await self._dead_letters.send(letters)
        outcome = await self._projector.apply(uow, events, commands, self._clock())
        await save_positions(uow, self._consumer, positions)
        return IngestOutcome(
            **vars(outcome), dead_letters=len(letters), skipped=skipped, positions=positions
        )
