"""Where a consumer stands: per partition, the stored position, the end offset and the lag; the
terminations by a text filter taken from the commands topic and not applied yet; and the
tenants whose searches are spending their shared budget (the admin API's)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

from aiokafka import TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model import search_budgets
from read_model.database import make_engine
from session_contracts.kafka_clients import new_consumer, start_consumer, stop_consumer
from session_contracts.settings import KafkaSettings
from session_registry.adapters.command_store import Deferred, deferred_commands
from session_registry.adapters.partitions import topic_partitions
from session_registry.adapters.positions import load_positions

T = TypeVar("T")


@dataclass(frozen=True)
class PartitionStatus:
    """One partition's standing for one consumer."""

    topic: str
    partition: int
    stored: int | None
    end: int

    @property
    def lag(self) -> int:
        """Records not yet applied (none past the end: see `past_end`)."""
        return max(0, self.end - (self.stored or 0))

    @property
    def past_end(self) -> bool:
        """Whether the stored position is past the end (read after it): the records up to it
        are skipped as applied (docs/operations.md#registrypositionpastend)."""
        return self.stored is not None and self.stored > self.end


async def consumer_status(
    connection: KafkaSettings, database_url: str, consumer: str, topic_names: list[str]
) -> list[PartitionStatus]:
    """The standing of `consumer` on every partition of these topics."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            stored = await load_positions(conn, consumer, set(topic_names))
    finally:
        await engine.dispose()
    kafka = new_consumer(connection)
    await start_consumer(kafka)
    try:
        partitions: list[TopicPartition] = []
        for name in topic_names:
            partitions.extend(await topic_partitions(kafka, name))
        ends = await kafka.end_offsets(partitions)
    finally:
        await stop_consumer(kafka)
    return [
        PartitionStatus(tp.topic, tp.partition, stored.get((tp.topic, tp.partition)), ends[tp])
        for tp in partitions
    ]


async def _read(database_url: str, read: Callable[[AsyncConnection], Awaitable[T]]) -> T:
    """`read` on a connection of an engine of its own, disposed of afterwards (a command's one
    look at the database)."""
    engine = make_engine(database_url)
    try:
        async with engine.connect() as conn:
            return await read(conn)
    finally:
        await engine.dispose()


async def waiting_terminations(database_url: str) -> list[Deferred]:
    """The deferred terminations, in the order they were taken
    (`service_layer.deferred_terminations`)."""
    return await _read(database_url, deferred_commands)


@dataclass(frozen=True)
class BudgetInUse:
    """One tenant's shared budget that is not full: what its searches (or terminations by a
    text filter) have left of `size` seconds a minute, negative while they owe time."""

    tenant_id: str
    budget: str
    left: float
    size: float

    @property
    def refused_for(self) -> float:
        """Seconds until the tenant's next search may start, as its 429 says (0: it may now)."""
        return max(1.0, -self.left / (self.size / 60)) if self.left <= 0 else 0.0


async def budgets_in_use(database_url: str) -> list[BudgetInUse]:
    """Every tenant's shared search budget that is not full, the most spent first: who the
    admin API refuses (429) or is about to."""
    now, stored = await _read(database_url, search_budgets.buckets)
    every = [
        BudgetInUse(tenant_id, budget, bucket.level(now), bucket.size)
        for budget, tenants in stored.items()
        for tenant_id, bucket in tenants.items()
    ]
    in_use = [b for b in every if b.left < b.size]
    return sorted(in_use, key=lambda b: (b.left / b.size, b.tenant_id, b.budget))
