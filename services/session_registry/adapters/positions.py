"""Where each consumer stands in each partition, stored with the read model it produced."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model.tables import consumer_positions
from session_registry.adapters.session_store import is_postgres

TopicPartitionKey = tuple[str, int]
_p = consumer_positions.c


async def load_positions(
    conn: AsyncConnection,
    consumer: str,
    topics: Collection[str] | None = None,
    *,
    lock: bool = False,
) -> dict[TopicPartitionKey, int]:
    """The next offset to read per (topic, partition) for `consumer` (locked on PostgreSQL)."""
    query = select(_p.topic, _p.partition, _p.next_offset).where(_p.consumer == consumer)
    if topics is not None:
        query = query.where(_p.topic.in_(sorted(topics)))
    if lock and is_postgres(conn):
        query = query.order_by(_p.topic, _p.partition).with_for_update()
    result = await conn.execute(query)
    return {(row.topic, row.partition): row.next_offset for row in result}


async def save_positions(
    conn: AsyncConnection, consumer: str, positions: Mapping[TopicPartitionKey, int]
) -> None:
    """Store next offsets; a stored position never moves backwards."""
    if not positions:
        return
    dialect = postgresql if is_postgres(conn) else sqlite
    statement = dialect.insert(consumer_positions)
    statement = statement.on_conflict_do_update(
        index_elements=[_p.consumer, _p.topic, _p.partition],
        set_={
            "next_offset": case(
                (_p.next_offset > statement.excluded.next_offset, _p.next_offset),
                else_=statement.excluded.next_offset,
            )
        },
    )
    rows = [
        {"consumer": consumer, "topic": topic, "partition": partition, "next_offset": offset}
        for (topic, partition), offset in sorted(positions.items())
    ]
    await conn.execute(statement, rows)
