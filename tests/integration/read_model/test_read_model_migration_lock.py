"""Replicas starting together on a fresh PostgreSQL database migrate it once, one at a time.

Four `session-registry migrate` processes start at the same moment (as four replicas of a
deployment would, each migrating on start): the advisory lock `upgrade_schema` holds makes the
first migrate and the others find the schema current; every process succeeds.
"""

from __future__ import annotations

import asyncio
import sys
import uuid

import pytest
from alembic.script import ScriptDirectory

from devstack.scratch_databases import create_database, drop_database
from read_model.database import make_engine, open_store, upgrade_schema
from read_model.revisions import alembic_config, current_revision

pytestmark = pytest.mark.postgres
REPLICAS = 4
HANG_SECONDS = 120


async def _migrate(url: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "session_registry",
        "migrate",
        "--database-url",
        url,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await process.communicate()
    return process.returncode or 0, output.decode(errors="replace")


async def test_four_replicas_migrating_a_fresh_database_at_once_all_succeed(
    postgres_admin_url: str,
) -> None:
    name = f"migrate_race_{uuid.uuid4().hex[:8]}"
    url = await create_database(postgres_admin_url, name)
    try:
        results = await asyncio.gather(*(_migrate(url) for _ in range(REPLICAS)))
        for code, output in results:
            assert code == 0, output
        await _assert_current(url)
    finally:
        await drop_database(postgres_admin_url, name)


async def test_four_upgrades_connected_before_any_starts_all_succeed(
    postgres_admin_url: str,
) -> None:
    """The race without process start-up times between them: four connections, each with its
    transaction open, all begin migrating when the last is ready."""
    name = f"migrate_race_{uuid.uuid4().hex[:8]}"
    url = await create_database(postgres_admin_url, name)
    stores = [open_store(url) for _ in range(REPLICAS)]
    try:
        for store in stores:  # connected (and the pool warm) before the race
            async with store.engine.connect():
                pass
        # a bound on a hang, not a speed claim: without the lock the four block each other
        async with asyncio.timeout(HANG_SECONDS):
            await asyncio.gather(*(upgrade_schema(store) for store in stores))
        await _assert_current(url)
    finally:
        for store in stores:
            await store.dispose()
        await drop_database(postgres_admin_url, name)


async def _assert_current(url: str) -> None:
    engine = make_engine(url)
    try:
        revision = await current_revision(engine)
    finally:
        await engine.dispose()
    assert revision == ScriptDirectory.from_config(alembic_config()).get_current_head()
