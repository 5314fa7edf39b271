"""The naive baseline of `bench.ingest`: a FastStream handler and an ORM transaction per event.

This is how a projection is usually written first: a subscriber decodes each event, loads the
row through the ORM, merges the event with the same fold the registry uses, adds the history
row, and commits, one event at a time.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from typing import Any

from faststream.kafka import KafkaBroker, KafkaMessage
from sqlalchemy.ext.asyncio import async_sessionmaker
from sqlalchemy.orm import registry as orm_registry

from read_model.database import make_engine, upgrade_schema
from read_model.tables import session_history, sessions
from session_contracts.codec import decode_event
from session_contracts.topics import Topics
from session_registry.domain.fold import apply
from session_registry.domain.history import history_entry
from session_registry.domain.state import COLUMNS, SessionState


class SessionRow:
    """ORM-mapped `sessions` row."""


class HistoryRow:
    """ORM-mapped `session_history` row."""


_mapper = orm_registry()
_mapper.map_imperatively(SessionRow, sessions)
_mapper.map_imperatively(HistoryRow, session_history)


async def naive_projection(
    bootstrap: str, topics: Topics, database_url: str, limit: int
) -> tuple[int, float]:
    """Project the first `limit` events the naive way: (events, seconds)."""
    await upgrade_schema(database_url)
    engine = make_engine(database_url)
    new_session = async_sessionmaker(engine, expire_on_commit=False)
    broker = KafkaBroker(bootstrap)
    done = asyncio.Event()
    count = 0

    @broker.subscriber(
        topics.events,
        group_id=f"bench-naive-{uuid.uuid4().hex[:8]}",
        auto_offset_reset="earliest",
    )
    async def handle(message: KafkaMessage) -> None:
        nonlocal count
        if count >= limit:
            done.set()
            return
        event = decode_event(message.body)
        async with new_session() as orm, orm.begin():
            row: Any = await orm.get(SessionRow, (event.tenant_id, event.session_id))
            if row is None:
                row = SessionRow()
                state = SessionState(tenant_id=event.tenant_id, session_id=event.session_id)
                orm.add(row)
            else:
                state = SessionState(**{name: getattr(row, name) for name in COLUMNS})
            apply(state, event)
            for name in COLUMNS:
                setattr(row, name, getattr(state, name))
            entry = history_entry(event)
            history_key = None if entry is None else (entry.tenant_id, entry.event_id)
            if entry is not None and await orm.get(HistoryRow, history_key) is None:
                history: Any = HistoryRow()
                for name, value in entry.as_row().items():
                    setattr(history, name, value)
                orm.add(history)
        count += 1
        if count >= limit:
            done.set()

    await broker.start()
    started = time.perf_counter()
    try:
        async with asyncio.timeout(max(600.0, limit / 50)):
            await done.wait()
        return count, time.perf_counter() - started
    finally:
        await broker.stop()
        await engine.dispose()
