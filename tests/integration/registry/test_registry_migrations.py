"""Alembic migrations create exactly the tables of `tables.py`, on SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from session_registry.adapters.database import make_engine, upgrade_schema
from session_registry.adapters.tables import metadata


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return list(compare_metadata(context, metadata))


def _state(connection: Connection) -> tuple[set[str], str | None]:
    tables = set(inspect(connection).get_table_names())
    revision = MigrationContext.configure(connection).get_current_revision()
    return tables, revision


async def test_upgrade_creates_exactly_the_tables(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        await upgrade_schema(engine)
        await upgrade_schema(engine)  # a second run finds the database current
        async with engine.connect() as connection:
            tables, revision = await connection.run_sync(_state)
            differences = await connection.run_sync(_differences)
    finally:
        await engine.dispose()
    assert tables == set(metadata.tables) | {"alembic_version"}
    assert revision == "0001"
    assert differences == []


async def test_upgrade_from_a_url(db_url: str) -> None:
    await upgrade_schema(db_url)
    engine = make_engine(db_url)
    try:
        async with engine.connect() as connection:
            tables, _ = await connection.run_sync(_state)
    finally:
        await engine.dispose()
    assert "sessions" in tables
