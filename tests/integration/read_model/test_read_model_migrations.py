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

from read_model.database import make_engine, open_store, upgrade_schema
from read_model.revisions import alembic_config
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
    later = {  # 0101, 0901, 1001, 1501, 1601, 1701, 1801
        "session_settings",
        "deferred_terminations",
        "search_budgets",
        "session_settings_history",
        "failed_commands",
        "registry_signing",
        "positions_past_end",
    }
    read_model = {name for name in metadata.tables if name not in later}
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


async def test_revision_0201_turns_v1_ids_into_the_handles_gateways_derive(db_url: str) -> None:
    """Stored v1 session ids (credentials) become session_handle(tenant, id) everywhere, and the
    three tables are keyed by tenant afterwards (two tenants may hold one event/command id)."""
    from datetime import UTC, datetime

    from sqlalchemy import insert, select

    from read_model.tables import (
        applied_commands,
        revocations,
        session_history,
        sessions,
        termination_requests,
    )
    from session_contracts.handles import session_handle

    at = datetime(2030, 1, 1, tzinfo=UTC)
    await upgrade_schema(db_url, revision="0102_counts_per_statement")
    engine = make_engine(db_url)
    request = {
        "tenant_id": "acme",
        "requested_by": "admin-1",
        "requested_at": at,
        "reason": "admin",
        "target": {"session_ids": ["cookie-1", "cookie-2"]},
    }
    try:
        async with engine.begin() as conn:
            for tenant in ("acme", "other"):
                await conn.execute(
                    insert(sessions).values(
                        tenant_id=tenant, session_id="cookie-1", state="open", created_at=at
                    )
                )
            await conn.execute(
                insert(session_history).values(
                    event_id="e-1",
                    tenant_id="acme",
                    session_id="cookie-1",
                    type="session.created",
                    occurred_at=at,
                    detail={},
                )
            )
            await conn.execute(
                insert(revocations).values(tenant_id="acme", session_id="cookie-1", valid_until=at)
            )
            await conn.execute(
                insert(termination_requests).values(command_id="c-1", requested=2, **request)
            )
            await conn.execute(
                insert(applied_commands).values(
                    command_id="c-1", applied_at=at, terminated=1, **request
                )
            )
        await upgrade_schema(db_url)
        async with engine.begin() as conn:
            stored = {(r.tenant_id, r.session_id) for r in await conn.execute(select(sessions))}
            [history] = list(await conn.execute(select(session_history)))
            [revoked] = list(await conn.execute(select(revocations)))
            targets = [r.target for r in await conn.execute(select(termination_requests))]
            targets += [r.target for r in await conn.execute(select(applied_commands))]
            # keyed by tenant now: another tenant may hold the same event and command ids
            await conn.execute(
                insert(session_history).values(
                    event_id="e-1",
                    tenant_id="other",
                    session_id="x" * 43,
                    type="session.created",
                    occurred_at=at,
                    detail={},
                )
            )
            await conn.execute(
                insert(termination_requests).values(
                    command_id="c-1", requested=1, **{**request, "tenant_id": "other"}
                )
            )
    finally:
        await engine.dispose()
    acme = session_handle("acme", "cookie-1")
    assert stored == {("acme", acme), ("other", session_handle("other", "cookie-1"))}
    assert history.session_id == acme
    assert revoked.session_id == acme
    expected = [acme, session_handle("acme", "cookie-2")]
    assert targets == [{"session_ids": expected}, {"session_ids": expected}]


async def _rows_after_upgrade(
    db_url: str, revision: str, written: list[tuple[Any, dict[str, Any]]], read: Any
) -> list[Any]:
    """The rows of `read` after writing `written` ((table, values) in order) at `revision`,
    then upgrading to the head."""
    from sqlalchemy import insert, select

    await upgrade_schema(db_url, revision=revision)
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            for table, values in written:
                await conn.execute(insert(table).values(**values))
        await upgrade_schema(db_url)
        async with engine.connect() as conn:
            return list((await conn.execute(select(read))).all())
    finally:
        await engine.dispose()


async def test_revision_1301_adds_the_record_fields_and_rewrites_no_row(db_url: str) -> None:
    """The three columns come NULL in the rows already there: no backfill, which on
    PostgreSQL would rewrite every revocation under the lock `ADD COLUMN` takes while the
    running registry's revocations wait (the revocation guard reads a bare row's session)."""
    from datetime import UTC, datetime

    from read_model.tables import revocations, sessions

    at = datetime(2030, 1, 1, tzinfo=UTC)
    ended = {
        "tenant_id": "acme",
        "session_id": "ended",
        "state": "terminated",
        "session_type": "mobile",
        "created_at": at,
        "ended_at": at,
        "end_reason": "admin",
    }
    revoked = {"tenant_id": "acme", "session_id": "ended", "valid_until": at}
    written = [(sessions, ended), (revocations, revoked)]
    [row] = await _rows_after_upgrade(db_url, "1201_term_keys", written, revocations)
    assert (row.tenant_id, row.session_id, row.valid_until.replace(tzinfo=UTC)) == (
        "acme",
        "ended",
        at,
    )
    assert (row.session_type, row.revoked_at, row.reason) == (None, None, None)


async def test_revision_1401_adds_the_creation_append_time_and_rewrites_no_row(
    db_url: str,
) -> None:
    """`creation_appended_at` comes NULL in the rows already there, which the fold takes as
    appended first (their creation was read before any still to come): no backfill under the
    lock `ADD COLUMN` takes on PostgreSQL."""
    from datetime import UTC, datetime

    from read_model.tables import sessions

    at = datetime(2030, 1, 1, tzinfo=UTC)
    opened = {
        "tenant_id": "acme",
        "session_id": "open",
        "user_id": "u1",
        "session_type": "browser",
        "created_at": at,
        "max_session_seconds": 60,
    }
    written = [(sessions, opened)]
    [row] = await _rows_after_upgrade(db_url, "1301_revocation_records", written, sessions)
    assert (row.session_id, row.user_id, row.created_at.replace(tzinfo=UTC)) == ("open", "u1", at)
    assert (row.max_session_seconds, row.creation_appended_at) == (60, None)


async def test_revision_1501_keeps_each_current_setting_in_the_history_from_its_change(
    db_url: str,
) -> None:
    """`session_settings_history` starts with each tenant's current settings, in force from
    their `updated_at`: what a termination by `policy_outdated` confirmed since compares with."""
    from datetime import UTC, datetime

    from read_model.tables import session_settings, session_settings_history

    at = datetime(2030, 1, 1, tzinfo=UTC)
    changed = {
        "tenant_id": "acme",
        "session_type": "mobile",
        "max_session_seconds": 7200,
        "idle_timeout_seconds": 600,
        "updated_at": at,
        "updated_by": "admin-1",
    }
    written = [(session_settings, changed)]
    [row] = await _rows_after_upgrade(
        db_url, "1401_creation_appended", written, session_settings_history
    )
    assert (row.tenant_id, row.session_type, row.since.replace(tzinfo=UTC)) == (
        "acme",
        "mobile",
        at,
    )
    assert (row.max_session_seconds, row.idle_timeout_seconds, row.changed_by) == (
        7200,
        600,
        "admin-1",
    )
