"""Alembic migrations create the tables the code declares, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlalchemy.engine import Connection

from read_model.database import alembic_config, make_engine, open_store, upgrade_schema
from read_model.tables import metadata


def _missing_or_different(connection: Connection) -> list[Any]:
    """Declared objects the database lacks or has differently (extra database objects are fine)."""
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    differences: list[Any] = []
    for diff in compare_metadata(context, metadata):
        kind = diff[0][0] if isinstance(diff, list) else diff[0]
        if not kind.startswith("remove_"):
            differences.append(diff)
    return differences


def _state(connection: Connection) -> tuple[set[str], str | None]:
    tables = set(inspect(connection).get_table_names())
    revision = MigrationContext.configure(connection).get_current_revision()
    return tables, revision


async def test_upgrade_creates_the_declared_tables(db_url: str) -> None:
    store = open_store(db_url)
    engine = store.engine
    try:
        await upgrade_schema(store)
        await upgrade_schema(store)  # a second run finds the database current
        async with engine.connect() as connection:
            tables, revision = await connection.run_sync(_state)
            differences = await connection.run_sync(_missing_or_different)
    finally:
        await engine.dispose()
    assert set(metadata.tables) <= tables
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert differences == []


async def test_initial_revision_creates_exactly_the_read_model(db_url: str) -> None:
    await upgrade_schema(db_url, revision="0001")
    engine = make_engine(db_url)
    try:
        async with engine.connect() as connection:
            tables, revision = await connection.run_sync(_state)
    finally:
        await engine.dispose()
    assert revision == "0001"
    read_model = {name for name in metadata.tables if name != "session_settings"}
    assert tables == read_model | {"alembic_version"}


async def test_the_migrate_command(db_url: str) -> None:
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "session_registry", "migrate", "--database-url", db_url],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    engine = make_engine(db_url)
    try:
        async with engine.connect() as connection:
            _, revision = await connection.run_sync(_state)
    finally:
        await engine.dispose()
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
