"""Revision 1401 alters `sessions` without stalling the release that runs meanwhile
(`read_model.polite_ddl`), on both backends.

Its `ADD COLUMN` takes the table's ACCESS EXCLUSIVE lock on PostgreSQL. Asked plainly, it waits
for every open transaction that read the table (an admin's CSV export, a long list query), and
every reader and writer queues behind it meanwhile: the registry's batches, so revocations,
would stop for as long as the slowest reader lasted. Found when the registry's start, migrating
while a test held a reader of `sessions` open, waited for good.
"""

from __future__ import annotations

import asyncio
import logging

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

from polling import until
from read_model.database import make_engine, upgrade_schema
from read_model.polite_ddl import politely

BEFORE = "1301_revocation_records"
BEFORE_1301 = "1201_term_keys"


def _execute(connection: Connection, statement: str) -> None:
    connection.execute(text(statement))


def _columns(connection: Connection) -> set[str]:
    return {column["name"] for column in inspect(connection).get_columns("sessions")}


@pytest.mark.parametrize("start", [BEFORE, BEFORE_1301])
async def test_the_migration_waits_for_a_reader_without_holding_up_the_others(
    db_url: str, caplog: pytest.LogCaptureFixture, start: str
) -> None:
    """From 1201 too: revision 1301 alters `revocations` first, and in the same transaction
    its lock would stay held (every revocation waiting) all the while 1401 waits (a review,
    2026-12-06): 1401 runs in a transaction of its own."""
    await upgrade_schema(db_url, revision=start)
    engine = make_engine(db_url)
    try:
        if engine.dialect.name != "postgresql":  # no lock queue: it runs at once
            await upgrade_schema(db_url)
            async with engine.connect() as conn:
                assert "creation_appended_at" in await conn.run_sync(_columns)
            return
        caplog.set_level(logging.WARNING, logger="read_model.polite_ddl")
        async with engine.connect() as reader:  # an export, its transaction open
            await reader.execute(text("BEGIN"))
            await reader.execute(text("SELECT count(*) FROM sessions"))
            pid = (await reader.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            migration = asyncio.create_task(upgrade_schema(db_url))

            def waiting() -> list[str]:
                return [m for r in caplog.records if "waiting to alter" in (m := r.getMessage())]

            async def told() -> bool:
                assert not migration.done()
                return bool(waiting())

            await until(told, within=30, what="the migration waiting for the reader")
            # the others read and write on meanwhile: a plain ALTER would queue them behind
            # it until the reader ends, and the reader never ends in this test
            for n in range(3):
                async with asyncio.timeout(30), engine.begin() as other:
                    await other.execute(text("SELECT count(*) FROM sessions"))
                    await other.execute(text("SELECT count(*) FROM revocations"))
                    await other.execute(
                        text(
                            "INSERT INTO sessions (tenant_id, session_id, state) "
                            "VALUES ('acme', :id, 'open')"
                        ),
                        {"id": f"s-{n}"},
                    )
                assert not migration.done()
            assert f"pid {pid} " in waiting()[0]  # who holds the table, by pid (never its query)
            await reader.execute(text("COMMIT"))
        async with asyncio.timeout(60):
            await migration
        async with engine.connect() as conn:
            assert "creation_appended_at" in await conn.run_sync(_columns)
            stored = (await conn.execute(text("SELECT count(*) FROM sessions"))).scalar_one()
        assert stored == 3
    finally:
        await engine.dispose()


async def test_a_reader_that_never_ends_fails_the_migration_naming_it(db_url: str) -> None:
    """Past its deadline the wait ends in an error naming the holder, and the statement was
    never run; on SQLite there is nothing to wait for."""
    await upgrade_schema(db_url, revision=BEFORE)
    engine = make_engine(db_url)
    statement = "ALTER TABLE sessions ADD COLUMN never_added TEXT"

    def alter(connection: Connection) -> None:
        politely(
            connection,
            "sessions",
            lambda: _execute(connection, statement),
            attempt_ms=100,
            pause_seconds=0.1,
            within_seconds=0.5,
        )

    try:
        if engine.dialect.name != "postgresql":
            async with engine.begin() as conn:
                await conn.run_sync(alter)
                assert "never_added" in await conn.run_sync(_columns)
            return
        async with engine.connect() as reader:
            await reader.execute(text("BEGIN"))
            await reader.execute(text("SELECT count(*) FROM sessions"))
            pid = (await reader.execute(text("SELECT pg_backend_pid()"))).scalar_one()
            async with engine.connect() as conn:
                held = f"could not take the lock on sessions.*pid {pid} "
                with pytest.raises(TimeoutError, match=held):
                    await conn.run_sync(alter)
                await conn.rollback()
            await reader.execute(text("COMMIT"))
        async with engine.connect() as conn:
            assert "never_added" not in await conn.run_sync(_columns)
    finally:
        await engine.dispose()
