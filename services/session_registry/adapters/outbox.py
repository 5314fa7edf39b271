"""The transactional outbox: records written with the read model, relayed to Kafka after commit.

A crash between the commit and the send re-sends on the next relay; every record the registry
publishes is idempotent (derived event ids; compacted revocation keys), so re-sending is safe.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.store import Store
from read_model.tables import outbox
from read_model.unit_of_work import UnitOfWork
from session_contracts.tracing import decode_headers, encode_headers

log = logging.getLogger(__name__)


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


async def outbox_level(conn: AsyncConnection, now: datetime) -> tuple[int, float]:
    """How many records wait to be published, and the age of the oldest in seconds (0: none)."""
    query = select(func.count(), func.min(outbox.c.created_at)).select_from(outbox)
    count, oldest = (await conn.execute(query)).one()
    if not count or oldest is None:
        return 0, 0.0
    if oldest.tzinfo is None:  # SQLite's CURRENT_TIMESTAMP is UTC without an offset
        oldest = oldest.replace(tzinfo=UTC)
    return int(count), max(0.0, (now - oldest).total_seconds())


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
            await asyncio.wait_for(self._lock.acquire(), wait)
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
            futures = [
                await self._producer.send(
                    row.topic,
                    None if row.value is None else bytes(row.value),
                    key=bytes(row.key),
                    headers=decode_headers(row.headers) or None,
                )
                for row in rows
            ]
            await asyncio.gather(*futures)
            await conn.execute(delete(outbox).where(outbox.c.id.in_([r.id for r in rows])))
        log.debug("relayed %d outbox records", len(rows))
        return len(rows)
