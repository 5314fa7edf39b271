"""The admin API's engine: the registry's `make_engine`, tuned for ad-hoc list queries."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncEngine
from sqlalchemy.pool import ConnectionPoolEntry

from session_registry.adapters.database import make_engine

STATEMENT_TIMEOUT = "15s"


def read_model_engine(url: str) -> AsyncEngine:
    """An engine on the read model; on PostgreSQL every list query is planned for its values.

    A generic plan cannot know a search pattern or how broad a filter is, and would pick the
    wrong index for the rest of the connection's life; planning costs well under a millisecond.
    """
    engine = make_engine(url)
    if engine.dialect.name == "postgresql":

        @event.listens_for(engine.sync_engine, "connect")
        def _on_connect(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("SET plan_cache_mode = force_custom_plan")
            cursor.execute(f"SET statement_timeout = '{STATEMENT_TIMEOUT}'")
            cursor.execute("SET application_name = 'session-admin-api'")
            cursor.close()

    return engine
