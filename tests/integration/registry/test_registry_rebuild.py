"""Rebuilding the read model from the log gives the live one row for row; the CLI swaps it in."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import os
import sqlite3
import sys
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from registry_helpers import (
    NOW,
    StartRegistry,
    activity,
    created,
    logout,
    past_the_appends,
    read_topic,
    registry_cli,
    session_rows,
    sibling_database,
    sid,
    table_rows,
)
from sqlalchemy import insert
from sqlalchemy.exc import DBAPIError

from devstack.scratch_databases import create_database
from fresh_topics import connection
from polling import until
from private_services import PrivatePostgres
from read_model.database import open_store, schema_of, upgrade_schema
from read_model.sqlite import SwapNotUndone
from read_model.tables import applied_commands, outbox, revocations, session_history, sessions
from read_model.unit_of_work import UnitOfWork
from session_contracts import record_signing
from session_contracts.handles import record_key
from session_contracts.models import SessionFilter, TerminateSessions, as_utc
from session_contracts.topics import Topics
from session_registry.adapters.group_members import group_members
from session_registry.adapters.session_store import save_sessions, state_from_row
from session_registry.domain.state import SessionState
from session_registry.service_layer.rebuild import RebuildReport, rebuild
from session_registry.service_layer.swap import carry_over, swap, swap_refusal
from session_registry.workload import Workload, records

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


async def read_model(url: str) -> tuple[dict[Any, Any], list[tuple[Any, ...]]]:
    """Sessions (as states, backend-neutral) and history rows of a database."""
    rows = await table_rows(url, sessions, [sessions.c.tenant_id, sessions.c.session_id])
    history = await table_rows(url, session_history, [session_history.c.event_id])
    return (
        {(r["tenant_id"], r["session_id"]): state_from_row(r) for r in rows},
        [(h["event_id"], h["type"], h["session_id"], h["detail"]) for h in history],
    )


def as_the_log_has_it(
    model: tuple[dict[Any, Any], list[tuple[Any, ...]]],
) -> tuple[dict[Any, Any], list[tuple[Any, ...]]]:
    """A read model without what no log holds: a row never created is deleted an hour after
    its registry stored it, by that registry's clock, so a rebuild's deadline differs by design
    (`diff --ignore expires_at`, docs/operations.md); it is left out."""
    states = {
        key: state if state.created else dataclasses.replace(state, expires_at=None)
        for key, state in model[0].items()
    }
    return states, model[1]


async def _live_activity(registry: Any, send: Send, topics: Topics) -> None:
    """A workload, a filter termination and an expiry sweep, all through the live registry."""
    await send(*records(Workload(sessions=150, activity=5, seed=3)), topic=topics.events)
    await send(created("old-1", at=NOW - timedelta(hours=2), idle_s=60))
    await send(activity("old-1", NOW - timedelta(hours=2) + timedelta(seconds=30)))
    await registry.wait_until_idle(60)
    await send(
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=Workload.start + timedelta(days=1),  # while the workload's sessions live
            tenant_id="tenant-1",
            requested_by="admin-1",
            filter=SessionFilter(session_type=["browser"]),
            confirmed_at=Workload.start + timedelta(days=1),
        )
    )
    await registry.wait_until_idle(60)
    await registry.sweep_once(past_the_appends())
    await registry.wait_until_idle(60)


@pytest.mark.slow
async def test_rebuild_equals_the_live_read_model(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    registry = await start_registry()
    await _live_activity(registry, send, topics)
    live = await read_model(db_url)
    assert any(s.state == "terminated" and s.end_reason == "admin" for s in live[0].values())
    assert live[0][("acme", sid("old-1"))].state == "expired"

    for workers in (1, 2):  # in this process, and shared among two processes
        into, drop = await sibling_database(db_url, tmp_path)  # same backend, empty
        try:
            report = await rebuild(
                connection(kafka_bootstrap, topics), topics, into, "rebuild-test", workers=workers
            )
            assert report.sessions == len(live[0]) and report.history == len(live[1])
            assert report.dead_letters == 0 and report.events > 0
            assert await read_model(into) == live
        finally:
            await drop()


@pytest.mark.slow
async def test_cli_rebuild_swap_and_status(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(database_url=live_url, consumer_group=group)
    await send(created("s1"), created("s2"))
    # events and commands are separate topics, read in no set order: an admin terminates a
    # session the read model lists, so the registry has its `session.created` first
    await registry.wait_until_idle(30)
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-1",
        session_ids=[sid("s1")],
    )
    await send(command)
    await registry.wait_until_idle(30)
    before = await read_model(live_url)
    env = _cli_env(kafka_bootstrap, topics, live_url, group)
    # while the registry runs it would write on to the file the swap moves away: refused
    early = tmp_path / "early.db"
    running = await registry_cli(
        env,
        "rebuild",
        "--into",
        f"sqlite+aiosqlite:///{early}",
        "--swap",
        "--unsigned-expiries",
        status=3,
    )
    assert "--swap refused" in running.stderr and "are connected" in running.stderr
    assert not _files(tmp_path, "early.db*") and not _files(tmp_path, "live.db.*.bak")
    await registry.stop()

    status = (await registry_cli(env, "status")).stdout
    assert f"consumer {group}" in status and "total lag 0" in status
    into = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    # without the registry's signing keys (a shell an SRE rebuilds from may lack them) a swap
    # is refused unless asked for: the rebuild would take in every forged expiry
    keyless = await registry_cli(env, "rebuild", "--into", into, "--swap", status=2)
    assert "--swap refused: SESSIONS_RECORD_SIGNING_KEYS is not set" in keyless.stderr
    assert not _files(tmp_path, "rebuilt.db*")
    done = await registry_cli(
        env, "rebuild", "--into", into, "--swap", "--unsigned-expiries", "--workers", "2"
    )
    out = done.stdout
    assert "warning: SESSIONS_RECORD_SIGNING_KEYS is not set" in done.stderr
    assert "3 events" in out and "2 sessions" in out and "swapped in" in out
    assert "applied_commands 1" in out
    assert await read_model(live_url) == before  # the rebuilt database now sits at live_url
    status = (await registry_cli(env, "status")).stdout
    assert "total lag 0" in status  # positions carried over: nothing to redo

    # the live registry resumes on the swapped database: the command stays applied once
    resumed = await start_registry(database_url=live_url, consumer_group=group)
    await send(command, created("s3"))
    await resumed.wait_until_idle(30)
    rows = await session_rows(resumed)
    assert set(rows) == {sid("s1"), sid("s2"), sid("s3")}
    assert rows[sid("s1")]["state"] == "terminated"
    applied = await table_rows(live_url, applied_commands, [applied_commands.c.command_id])
    assert len(applied) == 1


# `rebuild --swap` with its carry-over hooked: once the copy is made it says so (a file), then
# waits for the test's answer (another file), a registry joining the live group in between.
_CARRY_OVER_HOOKED = """
import asyncio, pathlib, sys
import session_registry.entrypoints.cli as cli
copied, joined = (pathlib.Path(p) for p in sys.argv[1:3])
carry_over = cli.carry_over

async def hooked(*args):
    result = await carry_over(*args)
    copied.touch()
    while not joined.exists():
        await asyncio.sleep(0.05)
    return result

cli.carry_over = hooked
cli.app(sys.argv[3:], prog_name="session-registry")
"""


async def test_a_registry_that_joins_during_the_carry_over_refuses_the_swap(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """The swap checks the live group twice: before the carry-over, and after it, as a registry
    started during it writes to the live database after its copy (lost with the swap). The one
    that joins in that window is refused (exit 3), the live database is not moved and holds
    what the joined registry wrote."""
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(database_url=live_url, consumer_group=group)
    await send(created("s1"))
    await registry.wait_until_idle(30)
    await registry.stop()
    env = _cli_env(kafka_bootstrap, topics, live_url, group)
    copied, joined = tmp_path / "copied", tmp_path / "joined"
    into = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CARRY_OVER_HOOKED,
        str(copied),
        str(joined),
        *("rebuild", "--into", into, "--swap", "--unsigned-expiries"),
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    done = asyncio.ensure_future(process.communicate())
    async with asyncio.timeout(120):  # a bound on a hang, not a speed claim
        while not copied.exists():
            assert not done.done(), (await done)[1].decode()  # it ended before the carry-over
            await asyncio.sleep(0.05)
        resumed = await start_registry(database_url=live_url, consumer_group=group)

        async def a_member() -> bool:
            return bool(await group_members(connection(kafka_bootstrap), group))

        await until(a_member, 30, "the registry joined the live group")
        await send(created("s2"))  # written by the joined registry to the live database
        await resumed.wait_until_idle(30)
        joined.touch()
        out, err = await done
    assert process.returncode == 3, out.decode() + err.decode()
    assert "joined during the carry-over; nothing was swapped" in err.decode()
    assert "swapped in" not in out.decode() and not _files(tmp_path, "live.db.*.bak")
    await resumed.stop()
    assert set((await read_model(live_url))[0]) == {("acme", sid("s1")), ("acme", sid("s2"))}


async def test_a_swap_revokes_what_the_replay_ended_while_the_registry_was_stopped(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """The replay publishes nothing, and the swap stores its positions under the live
    consumer: a logout, or the creation of a session an admin had terminated by id before
    it was created, appended while the registry was stopped, was revoked by nobody, and the
    session stayed valid at every gateway (found by a review, 2026-12-06)."""
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(database_url=live_url, consumer_group=group)
    await send(created("admin-ended"), created("logs-out"))
    await registry.wait_until_idle(30)
    await send(
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW,
            tenant_id="acme",
            requested_by="admin-1",
            session_ids=[sid("admin-ended"), sid("created-late")],  # the second not yet
        )
    )
    await registry.wait_until_idle(30)
    await registry.stop()
    # while the registry is stopped for the rebuild: a logout, and the late creation
    await send(logout("logs-out", NOW), created("created-late"))

    env = _cli_env(kafka_bootstrap, topics, live_url, group)
    into = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    out = (
        await registry_cli(env, "rebuild", "--into", into, "--swap", "--unsigned-expiries")
    ).stdout
    assert "revoked 2" in out, out
    resumed = await start_registry(database_url=live_url, consumer_group=group)
    await resumed.wait_until_idle(30)
    revoked = {r.key for r in await read_topic(kafka_bootstrap, topics.revocations)}
    assert revoked == {
        record_key("acme", sid(s)) for s in ("admin-ended", "logs-out", "created-late")
    }


async def test_cli_swap_into_a_missing_live_database_is_refused_before_replaying(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    missing = tmp_path / "nowhere" / "live.db"
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_DATABASE_URL": f"sqlite+aiosqlite:///{missing}",
    }
    into = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    done = await registry_cli(env, "rebuild", "--into", into, "--swap", status=2)
    assert "has no read model to replace" in done.stderr and "Traceback" not in done.stderr
    assert not missing.exists() and not (tmp_path / "rebuilt.db").exists()


async def _carried_over_with(
    live_url: str, rebuilt: str, ended: list[SessionState], now: datetime
) -> dict[str, int]:
    """`carry_over` from `live_url` into `rebuilt`, where a replay left the sessions `ended`."""
    store = open_store(rebuilt)
    try:
        await UnitOfWork(store).run(lambda uow: save_sessions(uow, ended))
    finally:
        await store.dispose()
    report = RebuildReport(
        consumer="r",
        events=0,
        dead_letters=0,
        sessions=len(ended),
        history=0,
        seconds=1.0,
        positions={},
    )
    return await carry_over(live_url, rebuilt, Topics(), "registry", report, now)


async def test_the_revocations_a_swap_queues_follow_the_copied_outbox(
    db_url: str, tmp_path: Path
) -> None:
    """The live outbox's unsent rows are copied with their ids; on PostgreSQL the rebuilt
    database's id sequence stood at 1, so the first revocation the swap queued collided with
    them and the whole swap rolled back after the replay (a review, 2026-12-06)."""
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    try:
        await upgrade_schema(db_url)
        await upgrade_schema(rebuilt)
        live = open_store(db_url)
        try:
            async with live.engine.begin() as conn:
                for n in range(3):
                    await conn.execute(insert(outbox).values(topic="t", key=b"k%d" % n, value=b"v"))
        finally:
            await live.dispose()
        now = datetime.now(UTC)
        ended = [
            SessionState(
                tenant_id="acme",
                session_id=sid(f"ended-{n}"),
                user_id="u1",
                session_type="browser",
                max_session_seconds=86400,
                idle_timeout_seconds=3600,
                created_at=now - timedelta(minutes=5),
                last_activity_at=now - timedelta(minutes=1),
                expires_at=now + timedelta(minutes=59),
                state="terminated",
                ended_at=now,
                end_reason="logout",
            )
            for n in range(3)
        ]
        copied = await _carried_over_with(db_url, rebuilt, ended, now)
        assert (copied["outbox"], copied["revoked"]) == (3, 3)
        rows = await table_rows(rebuilt, outbox, [outbox.c.id])
        assert len({row["id"] for row in rows}) == 6
    finally:
        await drop()


async def test_a_swap_revokes_again_a_session_the_replay_holds_valid_longer(
    db_url: str, tmp_path: Path
) -> None:
    """The live registry ended a session under a forged creation it read first (a policy of
    ten minutes): its revocation ends then. The replay, reading every partition, keeps the
    creation the broker appended first (thirty days). The live registry resumes past that
    creation and would never revoke the session again; the sweeper's tombstone in ten minutes
    would let it back in at every gateway. The swap revokes it again, lasting as long as the
    rebuilt session could be valid (a review, 2026-12-06); one whose revocation lasts as long
    is left alone."""
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    try:
        await upgrade_schema(db_url)
        await upgrade_schema(rebuilt)
        now = datetime.now(UTC)
        created_at = now - timedelta(minutes=5)
        month = 30 * 86400
        short, whole = sid("forged-first"), sid("revoked-whole")
        live = open_store(db_url)
        try:
            async with live.engine.begin() as conn:
                for session_id, until in [
                    (short, created_at + timedelta(minutes=10)),  # under the forged policy
                    (whole, created_at + timedelta(seconds=month)),
                ]:
                    await conn.execute(
                        insert(revocations).values(
                            tenant_id="acme",
                            session_id=session_id,
                            valid_until=until,
                            session_type="browser",
                            revoked_at=now,
                            reason="admin",
                        )
                    )
        finally:
            await live.dispose()
        ended = [
            SessionState(
                tenant_id="acme",
                session_id=session_id,
                user_id="u1",
                session_type="browser",
                max_session_seconds=month,
                idle_timeout_seconds=3600,
                created_at=created_at,
                last_activity_at=created_at,
                expires_at=created_at + timedelta(hours=1),
                state="terminated",
                ended_at=now,
                end_reason="admin",
            )
            for session_id in (short, whole)
        ]
        copied = await _carried_over_with(db_url, rebuilt, ended, now)
        assert copied["revoked"] == 1
        rows = {
            row["session_id"]: row["valid_until"]
            for row in await table_rows(rebuilt, revocations, [revocations.c.session_id])
        }
        month_after = created_at + timedelta(seconds=month)
        assert {k: as_utc(v) for k, v in rows.items()} == {short: month_after, whole: month_after}
        queued = await table_rows(rebuilt, outbox, [outbox.c.id])
        assert [row["key"] for row in queued] == [record_key("acme", short)]
    finally:
        await drop()


async def test_a_swap_that_cannot_finish_leaves_the_live_database_under_its_name(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL renamed the live database away, then was refused the rebuilt one's rename
    (someone connected to it: an SRE's `diff --other`): nothing was left under the live name
    and no service could start. SQLite moved the live file away, then could not move the
    rebuilt one in. Now both renames are one transaction, and the files moved are put back
    (found by a review, 2026-12-06)."""
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    try:
        await upgrade_schema(db_url)
        await upgrade_schema(rebuilt)
        live, other = open_store(db_url), open_store(rebuilt)
        try:
            if db_url.startswith("sqlite"):
                real_replace = os.replace
                rebuilt_file = rebuilt.partition(":///")[2]

                def refused_into_place(source: Any, target: Any) -> None:
                    if str(source) == rebuilt_file:
                        raise OSError(18, "Invalid cross-device link")
                    real_replace(source, target)

                monkeypatch.setattr(os, "replace", refused_into_place)
                with pytest.raises(OSError, match="cross-device"):
                    await live.replace_with(other, "20991231000000")
                monkeypatch.undo()
                assert not _files(tmp_path, "*.bak*")
            else:
                holder = await other.engine.connect()  # e.g. `diff --other REBUILT` left open
                try:
                    with pytest.raises(DBAPIError, match="accessed by other users"):
                        await live.replace_with(other, "20991231000000")
                finally:
                    await holder.close()
        finally:
            await live.dispose()
            await other.dispose()
        # the live database is where it was, with its read model
        assert await schema_of(db_url) is not None and await schema_of(rebuilt) is not None
    finally:
        await drop()


async def test_a_sqlite_database_rebuilt_on_another_file_system_is_refused_before_anything_moves(
    tmp_path: Path,
) -> None:
    """`os.replace` cannot cross file systems: the rebuilt file under /dev/shm (tmpfs) is
    refused before the live file is moved."""
    shm = Path("/dev/shm")
    if not _apart(shm, tmp_path):
        pytest.fail("the test needs /dev/shm on a file system of its own (tmpfs)")
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    elsewhere = shm / f"rebuilt-{uuid.uuid4().hex[:8]}.db"
    rebuilt_url = f"sqlite+aiosqlite:///{elsewhere}"
    try:
        await upgrade_schema(live_url)
        await upgrade_schema(rebuilt_url)
        live, other = open_store(live_url), open_store(rebuilt_url)
        try:
            with pytest.raises(OSError, match="another file system"):
                await live.replace_with(other, "20991231000000")
        finally:
            await live.dispose()
            await other.dispose()
        assert _files(tmp_path, "live.db") and not _files(tmp_path, "*.bak*")
    finally:
        for leftover in _files(shm, f"{elsewhere.name}*"):
            leftover.unlink()


async def test_a_sqlite_swap_whose_undo_fails_says_what_is_where(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The rebuilt file cannot move in, and the live file cannot move back: the CLI said the
    live database was unchanged while its name was empty (noticed at stop 61). Now the error
    names each file moved and where it was."""
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    rebuilt_url = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    await upgrade_schema(live_url)
    await upgrade_schema(rebuilt_url)
    live, other = open_store(live_url), open_store(rebuilt_url)
    real_replace = os.replace

    def only_away(source: Any, target: Any) -> None:
        if not str(target).endswith(".bak"):  # into place, or back: refused
            raise OSError(5, "Input/output error")
        real_replace(source, target)

    try:
        monkeypatch.setattr(os, "replace", only_away)
        with pytest.raises(SwapNotUndone) as failed:
            await live.replace_with(other, "20991231000000")
        monkeypatch.undo()
    finally:
        await live.dispose()
        await other.dispose()
    backup = tmp_path / "live.db.20991231000000.bak"
    assert backup.exists() and not (tmp_path / "live.db").exists()
    assert f"{backup} (was {tmp_path / 'live.db'})" in str(failed.value)


def _cli_env(kafka_bootstrap: str, topics: Topics, live_url: str, group: str) -> dict[str, str]:
    """The environment of the registry CLI run on the live database and group."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_DATABASE_URL": live_url,
        "SESSIONS_CONSUMER_GROUP": group,
    }


def _files(folder: Path, pattern: str) -> list[Path]:
    return list(folder.glob(pattern))


def _apart(folder: Path, other: Path) -> bool:
    """Whether `folder` is a folder on another file system than `other`."""
    return folder.is_dir() and folder.stat().st_dev != other.stat().st_dev


async def test_a_sqlite_database_still_open_elsewhere_is_not_swapped_without_its_log(
    tmp_path: Path,
) -> None:
    """A connection left open on the rebuilt file (a `diff --other`, a `sqlite3` shell) keeps
    its last transactions, the carry-over's, in `-wal`, which a swap moving the file alone
    left behind: the live file then lacked them (found by a review, 2026-12-06). Refused, and
    nothing moves."""
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    rebuilt_url = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    await upgrade_schema(live_url)
    await upgrade_schema(rebuilt_url)
    holder = await asyncio.to_thread(_hold_open, tmp_path / "rebuilt.db")
    live, other = open_store(live_url), open_store(rebuilt_url)
    try:
        with pytest.raises(OSError, match="open elsewhere"):
            await live.replace_with(other, "20991231000000")
    finally:
        await live.dispose()
        await other.dispose()
        holder.close()
    assert _files(tmp_path, "live.db") and not _files(tmp_path, "*.bak*")


def _hold_open(path: Path) -> sqlite3.Connection:
    """A connection on `path` that wrote a row into its WAL and stays open."""
    holder = sqlite3.connect(path, check_same_thread=False)
    holder.execute("CREATE TABLE IF NOT EXISTS scratch (n INTEGER)")
    holder.execute("INSERT INTO scratch VALUES (1)")
    holder.commit()
    return holder


async def test_a_swap_revokes_an_expired_session_its_platform_served_after(
    db_url: str, tmp_path: Path
) -> None:
    """A replay writes no revocations: the live registry revoked an expired session whose
    activity came after its expiry (since stop 70), and the swap revokes such a session the
    rebuilt model holds, as the live one would; not one expired and quiet since."""
    rebuilt, drop = await sibling_database(db_url, tmp_path)
    try:
        await upgrade_schema(db_url)
        await upgrade_schema(rebuilt)
        now = datetime.now(UTC)
        created_at = now - timedelta(hours=2)
        expired_at = created_at + timedelta(hours=1)
        served, quiet = sid("served-after"), sid("quiet-after")
        ended = [
            SessionState(
                tenant_id="acme",
                session_id=session_id,
                user_id="u1",
                session_type="browser",
                max_session_seconds=86400,
                idle_timeout_seconds=3600,
                created_at=created_at,
                last_activity_at=last,
                expires_at=expired_at,
                state="expired",
                ended_at=expired_at,
                end_reason="idle",
            )
            for session_id, last in (
                (served, expired_at + timedelta(minutes=5)),
                (quiet, created_at),
            )
        ]
        copied = await _carried_over_with(db_url, rebuilt, ended, now)
        assert copied["revoked"] == 1
        queued = await table_rows(rebuilt, outbox, [outbox.c.id])
        assert [row["key"] for row in queued] == [record_key("acme", served)]
        [row] = await table_rows(rebuilt, revocations, [revocations.c.session_id])
        assert (row["session_id"], row["reason"]) == (served, "idle")
    finally:
        await drop()


async def test_a_swap_is_refused_from_a_shell_that_reads_expiries_otherwise(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    tmp_path: Path,
) -> None:
    """The swap took the SRE shell's signing keys and "since": a later "since" applied every
    unsigned `session.expired` appended in between, the forged ones the registry had
    dead-lettered too, and swapped their sessions in expired (a review, stop 70). The registry
    writes its own at its start now; a shell that differs is refused, naming both, and
    `--unsigned-expiries` no longer passes a shell without the registry's keys."""
    key = "a-record-signing-key-of-the-registry-for-tests"
    since = datetime(2026, 1, 1, tzinfo=UTC)
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    group = f"registry-{uuid.uuid4().hex[:8]}"
    registry = await start_registry(
        database_url=live_url,
        consumer_group=group,
        record_signing_keys=key,
        record_signing_since=since,
    )
    await send(created("s1"))
    await registry.wait_until_idle(30)
    await registry.stop()
    keyless = _cli_env(kafka_bootstrap, topics, live_url, group)
    env = {**keyless, "SESSIONS_RECORD_SIGNING_KEYS": key}
    into = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    key_id = "keys " + record_signing.key_id(key.encode()).decode()
    later = {**env, "SESSIONS_RECORD_SIGNING_SINCE": (since + timedelta(days=30)).isoformat()}
    for shell, flags in ((later, ()), (keyless, ("--unsigned-expiries",))):
        refused = await registry_cli(shell, "rebuild", "--into", into, "--swap", *flags, status=2)
        said = refused.stderr
        assert "--swap refused: the registry reads session.expired records with" in said, said
        assert f"{key_id}, SESSIONS_RECORD_SIGNING_SINCE {since.isoformat()}" in said
        assert key not in said
        assert not _files(tmp_path, "rebuilt.db*")
    same = {**env, "SESSIONS_RECORD_SIGNING_SINCE": since.isoformat()}
    done = await registry_cli(same, "rebuild", "--into", into, "--swap")
    assert "swapped in" in done.stdout, done.stderr


async def test_cli_swap_into_a_database_a_newer_release_migrated_is_refused(
    kafka_bootstrap: str, tmp_path: Path
) -> None:
    """The carry-over copies what this release knows: a newer release's tables and columns
    were dropped by the swap (a review, stop 70)."""
    live = tmp_path / "live.db"
    live_url = f"sqlite+aiosqlite:///{live}"
    await upgrade_schema(live_url)
    with sqlite3.connect(live) as conn:
        conn.execute("UPDATE alembic_version SET version_num = '9901_from_a_newer_release'")
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_DATABASE_URL": live_url,
    }
    into = f"sqlite+aiosqlite:///{tmp_path / 'rebuilt.db'}"
    done = await registry_cli(
        env, "rebuild", "--into", into, "--swap", "--unsigned-expiries", status=2
    )
    assert "--swap refused: the live database is at revision 9901_from_a_newer_release" in (
        done.stderr
    )
    assert not (tmp_path / "rebuilt.db").exists()


@pytest.mark.postgres
@pytest.mark.slow  # a PostgreSQL server of its own
@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_swap_is_refused_into_a_database_on_another_server(
    db_url: str, tmp_path: Path, private_postgres: PrivatePostgres
) -> None:
    """The swap renames databases on the live one's server: a rebuild into another server
    renamed in a stale database of the rebuilt one's name on the live server (a review, stop
    70). Refused, before the carry-over; a database on the live server is swappable."""
    await upgrade_schema(db_url)
    elsewhere = await create_database(private_postgres.admin_url, "sessions_rebuild")
    refusal = await swap_refusal(db_url, elsewhere)
    assert refusal is not None and "is not on the live database's server" in refusal
    assert "sessions:sessions@" not in refusal  # the password redacted
    with pytest.raises(ValueError, match="not on the live database's server"):
        await swap(db_url, elsewhere)
    here, drop = await sibling_database(db_url, tmp_path)
    try:
        assert await swap_refusal(db_url, here) is None
    finally:
        await drop()
    # a rebuild into SQLite raised out of the swap after the carry-over (a review of the fix)
    other_backend = await swap_refusal(db_url, f"sqlite+aiosqlite:///{tmp_path / 'r.db'}")
    assert other_backend is not None and "not on the live database's backend" in other_backend


async def test_a_registry_started_with_a_later_signing_since_says_so(
    start_registry: StartRegistry, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The row a swap compares with holds the last registry's settings: one started with a
    later "since" applies the unsigned expiries appended in between, and says so (a review,
    stop 70). The same or an earlier one says nothing."""
    key = "a-record-signing-key-of-the-registry-for-tests"
    since = datetime(2026, 1, 1, tzinfo=UTC)
    live_url = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"
    caplog.set_level(logging.WARNING, "session_registry.bootstrap")
    for moved in (timedelta(0), timedelta(0), timedelta(days=-30), timedelta(days=60)):
        registry = await start_registry(
            database_url=live_url, record_signing_keys=key, record_signing_since=since + moved
        )
        await registry.stop()
    said = [r.getMessage() for r in caplog.records if "moved later" in r.getMessage()]
    assert said == [
        "SESSIONS_RECORD_SIGNING_SINCE moved later, from 2025-12-02T00:00:00+00:00 to "
        "2026-03-02T00:00:00+00:00: unsigned session.expired records appended between the two "
        "are applied now, forged ones too (docs/operations.md#signing-the-registrys-expiries)"
    ]
