"""The transactional outbox: records written with the read model, relayed to Kafka after commit.

A crash between the commit and the send re-sends on the next relay; every record the registry
publishes is idempotent (derived event ids; compacted revocation keys), so re-sending is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaProducer
from aiokafka.partitioner import DefaultPartitioner
from aiokafka.producer.message_accumulator import BatchBuilder
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.store import Store
from read_model.tables import outbox
from read_model.unit_of_work import UnitOfWork
from session_contracts.tracing import decode_headers, encode_headers
from session_registry.adapters.queues import queue_level

log = logging.getLogger(__name__)
_PARTITIONER = DefaultPartitioner()


@dataclass(frozen=True, slots=True)
class OutboxRecord:
    """One Kafka record to publish; `value` None is a tombstone."""

    topic: str
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


async def add_to_outbox(uow: UnitOfWork, records: Iterable[OutboxRecord]) -> int:
    """Queue records for publishing, in the caller's unit of work; return how many."""
    rows = [(r.topic, r.key, r.value, encode_headers(r.headers)) for r in records]
    await uow.store.add_to_outbox(uow.conn, rows)
    return len(rows)


async def outbox_size(conn: AsyncConnection) -> int:
    """How many records wait to be published."""
    return int((await conn.execute(select(func.count()).select_from(outbox))).scalar_one())


async def outbox_level(conn: AsyncConnection) -> tuple[int, float]:
    """How many records wait to be published, and the age of the oldest in seconds (0: none),
    by the database's clock, which stamps them (`created_at`'s server default): against the
    registry's, a registry clock behind the database's delayed RegistryOutboxStuck by as
    much, and one ahead raised it during a long drain (a review, stop 72)."""
    return await queue_level(conn, outbox.c.created_at, None)


class OutboxRelay:
    """Publishes outbox rows in id order with an idempotent producer, then deletes them."""

    def __init__(self, store: Store, producer: AIOKafkaProducer, chunk: int = 2000) -> None:
        self._store = store
        self._producer = producer
        self._chunk = chunk
        self._lock = asyncio.Lock()

    @contextlib.asynccontextmanager
    async def paused(self, wait: float) -> AsyncIterator[None]:
        """Let a relay in flight finish (up to `wait` seconds), then start no new one inside.

        A relay cut short after sending and before its commit leaves the rows to be sent
        again; stopping inside `paused` keeps a graceful stop (a deploy, a scale-down) from
        doing that.
        """
        try:
            async with asyncio.timeout(wait):
                await self._lock.acquire()
        except TimeoutError:  # the broker is slow or away: stop anyway, the rows stay queued
            log.warning("outbox relay still busy after %.0f s; stopping anyway", wait)
            yield
            return
        try:
            yield
        finally:
            self._lock.release()

    async def relay(self) -> int:
        """Publish everything queued (until the outbox is empty); return how many were sent."""
        sent = 0
        async with self._lock:
            while True:
                count = await self._relay_chunk()
                sent += count
                if count < self._chunk:
                    return sent

    async def _relay_chunk(self) -> int:
        async with UnitOfWork(self._store) as uow:
            conn = uow.conn
            query = select(outbox).order_by(outbox.c.id).limit(self._chunk)
            # a second registry relaying at the same time takes the other rows
            rows = (await conn.execute(uow.store.for_update(query, skip_locked=True))).all()
            if not rows:
                return 0
            futures = await self._publish(rows)
            await asyncio.gather(*futures)
            ids = [r.id for r in rows]
            await conn.execute(delete(outbox).where(uow.store.one_of(outbox.c.id, ids)))
        log.debug("relayed %d outbox records", len(rows))
        return len(rows)

    async def _publish(self, rows: Sequence[Any]) -> list[asyncio.Future[Any]]:
        """Append the rows to one batch per partition, in order, and hand each batch to the
        producer as it fills; return the batches' delivery futures.

        The partition is the producer's own (`DefaultPartitioner`, murmur2 of the key, as
        every producer of these topics computes it), found once per key and partition count:
        a session's event and revocation share a key. A batch per partition instead of a
        `send` per record: the records are appended in C, without a future each.
        """
        producer = self._producer
        partitions: dict[str, list[int]] = {}
        partition_of: dict[tuple[bytes, int], int] = {}
        batches: dict[tuple[str, int], BatchBuilder] = {}
        futures: list[asyncio.Future[Any]] = []
        for row in rows:
            topic = row.topic
            every = partitions.get(topic)
            if every is None:
                every = partitions[topic] = sorted(await producer.partitions_for(topic))
            key = bytes(row.key)
            slot = (key, len(every))
            partition = partition_of.get(slot)
            if partition is None:
                partition = partition_of[slot] = _PARTITIONER(key, every, every)
            value = None if row.value is None else bytes(row.value)
            headers = decode_headers(row.headers)
            tp = (topic, partition)
            batch = batches.get(tp)
            if batch is None:
                batch = batches[tp] = producer.create_batch()
            if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                futures.append(await producer.send_batch(batch, topic, partition=partition))
                batch = batches[tp] = producer.create_batch()
                if batch.append(timestamp=None, key=key, value=value, headers=headers) is None:
                    raise ValueError(
                        f"an outbox record of {len(value or b'')} bytes is larger "
                        "than the producer's batch"
                    )
        for (topic, partition), batch in batches.items():
            futures.append(await producer.send_batch(batch, topic, partition=partition))
        return futures
