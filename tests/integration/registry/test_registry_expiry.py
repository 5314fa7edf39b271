"""The sweeper: sessions past `expires_at` expire by their own policy; old revocations tombstone."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
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
    session_rows,
    sid,
    table_rows,
)

from polling import until
from read_model.tables import applied_commands, revocations, session_history, termination_requests
from session_contracts.handles import record_key
from session_contracts.models import SessionFilter, TerminateSessions, as_utc
from session_contracts.topics import Topics
from session_registry.domain.lifecycle import EXPIRY_NAMESPACE
from session_registry.service_layer.expiry import AUDIT_SWEEP_INTERVAL

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]
DAY = 86400


async def test_sweeper_expires_by_each_sessions_own_policy(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # not NOW: `past_the_appends`
    registry = await start_registry(sweep_batch_size=2)  # several bounded batches
    start = now - timedelta(hours=1)
    await send(
        # idle after 10 minutes without activity
        created("idle-1", at=start, max_s=86400, idle_s=600),
        activity("idle-1", start + timedelta(minutes=5)),
        # at most 30 minutes long, however active
        created("long-1", at=start, max_s=1800, idle_s=3600),
        activity("long-1", start + timedelta(minutes=29)),
        # same timing under a longer policy (created before the settings changed): still open
        created("kept-1", at=start, max_s=86400, idle_s=7200),
        created("kept-2", at=start, max_s=86400, idle_s=7200),
        created("kept-3", at=start, max_s=86400, idle_s=7200),
    )
    await registry.wait_until_idle(30)
    after = past_the_appends()
    outcome = await registry.sweep_once(after)
    assert outcome.expired == 2
    await registry.wait_until_idle(30)  # the expiry events come back through the log

    rows = await session_rows(registry)
    idle, long = rows[sid("idle-1")], rows[sid("long-1")]
    assert (idle["state"], idle["end_reason"]) == ("expired", "idle")
    assert (long["state"], long["end_reason"]) == ("expired", "max_length")
    assert {rows[sid(s)]["state"] for s in ("kept-1", "kept-2", "kept-3")} == {"open"}
    expiries = [
        r for r in await read_topic(kafka_bootstrap, topics.events) if b"session.expired" in r.value
    ]
    published = [json.loads(r.value) for r in expiries]
    assert {e["event_id"] for e in published} == {
        str(uuid.uuid5(EXPIRY_NAMESPACE, f"acme\x1f{sid(s)}")) for s in ("idle-1", "long-1")
    }
    assert {r.key for r in expiries} == {record_key("acme", sid(s)) for s in ("idle-1", "long-1")}
    history = await table_rows(db_url, session_history, [session_history.c.event_id])
    assert sum(h["type"] == "session.expired" for h in history) == 2

    # a second sweep finds nothing more to do
    assert (await registry.sweep_once(after)).expired == 0


async def test_revocations_are_tombstoned_after_valid_until(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    registry = await start_registry()
    await send(created("s1", max_s=3600), logout("s1", NOW - timedelta(minutes=1)))
    await registry.wait_until_idle(30)
    assert len(await table_rows(db_url, revocations, [revocations.c.session_id])) == 1

    assert (await registry.sweep_once(NOW)).tombstoned == 0  # still possibly valid
    outcome = await registry.sweep_once(NOW + timedelta(hours=2))
    assert outcome.tombstoned == 1
    records = await read_topic(kafka_bootstrap, topics.revocations)
    key = record_key("acme", sid("s1"))
    assert [(r.key, r.value is None) for r in records] == [(key, False), (key, True)]
    assert await table_rows(db_url, revocations, [revocations.c.session_id]) == []


async def test_ended_sessions_are_deleted_once_the_retention_is_past_their_end_and_expiry(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    """Ended sessions go, with their history, `ended_retention_days` after the later of their
    end and their `expires_at`; revocations stay to their own `valid_until`; a duplicate of a
    deleted session's creation never makes it active again."""
    now = datetime.now(UTC).replace(microsecond=0)  # not NOW: `past_the_appends`
    registry = await start_registry(ended_retention_days=1)
    ago = now - timedelta(days=3)
    await send(
        # ended three days ago, its own bound too: deleted; its revocation is valid 27 days more
        old_logout := created("old-logout", at=ago, max_s=30 * DAY, idle_s=3600),
        logout("old-logout", ago + timedelta(minutes=10)),
        # ended an hour ago: kept
        created("recent-logout", at=now - timedelta(hours=2)),
        logout("recent-logout", now - timedelta(hours=1)),
        # ended three days ago, but it would have lasted until now: kept a day more
        created("long-lived", at=ago, max_s=10 * DAY, idle_s=3 * DAY),
        logout("long-lived", ago + timedelta(minutes=1)),
        # idle three days ago: expired by a sweep of its day, deleted by today's
        created("idle", at=ago, max_s=DAY, idle_s=600),
        created("open", at=now - timedelta(minutes=5)),
    )
    await registry.wait_until_idle(30)
    # appended days after this sweep's moment: further than the hold reaches (a broker's
    # clock that far ahead holds nothing), so expired as on its day
    assert (await registry.sweep_once(ago + timedelta(hours=2))).expired == 1  # "idle"
    await registry.wait_until_idle(30)  # its expiry comes back through the log
    # a day after "idle" ended (ago + 10 min) and "old-logout" expired (ago + 1 h): not yet
    assert (await registry.sweep_once(ago + timedelta(days=1, minutes=9))).purged == 0
    history_before = await table_rows(db_url, session_history, [session_history.c.event_id])
    revoked_before = await table_rows(db_url, revocations, [revocations.c.session_id])

    outcome = await registry.sweep_once(now)
    assert outcome.purged == 2
    await registry.wait_until_idle(30)

    purged = {sid("old-logout"), sid("idle")}
    rows = await session_rows(registry)
    assert set(rows) == {sid(s) for s in ("recent-logout", "long-lived", "open")}
    history = await table_rows(db_url, session_history, [session_history.c.event_id])
    assert {h["session_id"] for h in history} == set(rows)
    assert [h for h in history_before if h["session_id"] not in purged] == history
    assert len(history_before) > len(history)  # the deleted sessions had history
    # the revocation of the deleted "old-logout" stays until its valid_until
    assert await table_rows(db_url, revocations, [revocations.c.session_id]) == revoked_before
    assert sid("old-logout") in {r["session_id"] for r in revoked_before}
    tombstones = [
        r for r in await read_topic(kafka_bootstrap, topics.revocations) if r.value is None
    ]
    assert tombstones == []
    assert registry.metrics is not None
    purged_count = registry.metrics.registry.get_sample_value(
        "session_registry_sessions_purged_total"
    )
    assert purged_count == 2

    # The same creation again (a producer's retry, a replayed record): its row is back, open,
    # but past its own bound from the start, so never active, and the next sweep ends it.
    await send(old_logout)
    await registry.wait_until_idle(30)
    back = (await session_rows(registry))[sid("old-logout")]
    assert back["state"] == "open"
    assert back["expires_at"].replace(tzinfo=UTC) == ago + timedelta(hours=1)
    async with registry.engine.connect() as conn:
        listed = await registry.store.count_active(conn, SessionFilter(), "acme", now)
    assert listed == 1  # "open" alone
    # it arrived past its deadline: not expired before the grace past its append
    assert (await registry.sweep_once(now)).expired == 0
    outcome = await registry.sweep_once(past_the_appends())
    assert (outcome.expired, outcome.purged) == (1, 1)
    await registry.wait_until_idle(30)
    # Expired and deleted in one sweep (a registry catching up), so the expiry's echo from the
    # log finds no row: it leaves one never created, as any end of an unknown session does,
    # never listed, and deleted `activity_only_seconds` after it was stored.
    ghost = (await session_rows(registry))[sid("old-logout")]
    assert (ghost["created_at"], ghost["state"]) == (None, "expired")
    stored_by = datetime.now(UTC) + timedelta(seconds=registry.settings.activity_only_seconds)
    assert (await registry.sweep_once(stored_by + timedelta(minutes=1))).deleted == 1
    assert sid("old-logout") not in await session_rows(registry)


async def test_the_audit_trail_goes_once_its_retention_is_past_and_is_swept_hourly(
    start_registry: StartRegistry, send: Send, db_url: str
) -> None:
    """Applied commands and their requests go `audit_retention_days` after they were
    requested, both tables, in bounded batches; newer ones stay; the sweep of the audit
    trail runs at most once per `AUDIT_SWEEP_INTERVAL`, whatever the sweeper's own pace."""
    registry = await start_registry(audit_retention_days=8, sweep_batch_size=2)

    def terminate(ago: timedelta, credential: str) -> TerminateSessions:
        return TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW - ago,
            tenant_id="acme",
            requested_by="admin-1",
            session_ids=[sid(credential)],
        )

    old = [terminate(timedelta(days=9), f"old-{n}") for n in range(5)]
    edge = terminate(timedelta(days=8) - timedelta(minutes=10), "edge")
    recent = terminate(timedelta(days=1), "recent")
    await send(*old, edge, recent)
    await registry.wait_until_idle(30)

    async def audit() -> dict[str, set[str]]:
        return {
            table.name: {
                r["command_id"]
                for r in await table_rows(db_url, table, [table.c.tenant_id, table.c.command_id])
            }
            for table in (applied_commands, termination_requests)
        }

    everything = {str(c.command_id) for c in (*old, edge, recent)}
    assert await audit() == {"applied_commands": everything, "termination_requests": everything}

    outcome = await registry.sweep_once(NOW)
    assert outcome.audit_purged == 10  # five commands, two rows each
    kept = {str(edge.command_id), str(recent.command_id)}
    assert await audit() == {"applied_commands": kept, "termination_requests": kept}

    # the edge command is past the retention ten minutes later, but not swept before the
    # interval is over
    assert (await registry.sweep_once(NOW + AUDIT_SWEEP_INTERVAL / 2)).audit_purged == 0
    assert await audit() == {"applied_commands": kept, "termination_requests": kept}
    assert (await registry.sweep_once(NOW + AUDIT_SWEEP_INTERVAL)).audit_purged == 2
    only = {str(recent.command_id)}
    assert await audit() == {"applied_commands": only, "termination_requests": only}
    assert registry.metrics is not None
    counted = registry.metrics.registry.get_sample_value("session_registry_audit_purged_total")
    assert counted == 12


async def test_two_registries_sweeping_the_audit_trail_at_once_delete_each_row_once(
    start_registry: StartRegistry, send: Send, db_url: str
) -> None:
    """Replicas sweep the same database at once (interleaved batches on PostgreSQL, one writer
    at a time on SQLite): every row past the retention goes, counted once between them, and
    nothing newer. That a sweep skips the rows the other holds rather than waiting for them is
    the store's `test_skip_locked_leaves_out_what_another_writer_holds`: without it this
    outcome holds too, the second sweep waiting."""
    first = await start_registry(audit_retention_days=8, sweep_batch_size=3)
    old = [
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW - timedelta(days=9, minutes=n),
            tenant_id=f"tenant-{n % 3}",
            requested_by="admin-1",
            session_ids=[sid(f"old-{n}", f"tenant-{n % 3}")],
        )
        for n in range(40)
    ]
    recent = old[0].model_copy(update={"command_id": uuid.uuid4(), "requested_at": NOW})
    await send(*old, recent)
    await first.wait_until_idle(30)
    second = await start_registry(audit_retention_days=8, sweep_batch_size=3)
    await first.wait_until_idle(30)
    await second.wait_until_idle(30)

    outcomes = await asyncio.gather(first.sweep_once(NOW), second.sweep_once(NOW))

    assert sum(o.audit_purged for o in outcomes) == 2 * len(old)  # two tables, once each
    for table in (applied_commands, termination_requests):
        left = await table_rows(db_url, table, [table.c.tenant_id, table.c.command_id])
        assert [r["command_id"] for r in left] == [str(recent.command_id)], table.name


async def test_a_session_is_expired_only_a_grace_after_its_deadline_and_late_activity_keeps_it(
    start_registry: StartRegistry, send: Send
) -> None:
    """A gateway reports a session at most once a minute, so its activity can reach the
    registry after the registry's idle deadline though the platform's is later: the sweeper
    leaves a session open `activity_grace` past its `expires_at`, and activity arriving within
    it carries the session on. Past the grace the expiry is final, dated `expires_at`."""
    registry = await start_registry(activity_grace_seconds=120)
    # dated from a moment past the grace after the creations' append (`past_the_appends`):
    # a creation that arrives past its deadline waits the grace past its append as well
    now = past_the_appends() + timedelta(seconds=60)
    start = now - timedelta(hours=1)
    await send(
        # the registry's deadline 30 s ago; the user came back 40 s ago, reported late
        created("late-1", at=start, idle_s=3600 - 30),
        # deadline 30 s ago too, nothing more: expired once the grace is over
        created("quiet-1", at=start, idle_s=3600 - 30),
        # past its deadline by more than the grace: expired now
        created("gone-1", at=start, idle_s=3600 - 121),
    )
    await registry.wait_until_idle(30)
    assert (await registry.sweep_once(now)).expired == 1
    await send(activity("late-1", now - timedelta(seconds=40)))
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert {s: rows[sid(s)]["state"] for s in ("late-1", "quiet-1", "gone-1")} == {
        "late-1": "open",
        "quiet-1": "open",
        "gone-1": "expired",
    }
    assert as_utc(rows[sid("gone-1")]["ended_at"]) == start + timedelta(seconds=3600 - 121)

    assert (await registry.sweep_once(now + timedelta(seconds=90))).expired == 1
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    quiet, late = rows[sid("quiet-1")], rows[sid("late-1")]
    assert (quiet["state"], as_utc(quiet["ended_at"])) == ("expired", now - timedelta(seconds=30))
    assert late["state"] == "open"  # its deadline moved: 40 s ago + its idle timeout
    assert as_utc(late["expires_at"]) == now - timedelta(seconds=40) + timedelta(seconds=3570)


async def test_sweeps_that_fail_are_counted_then_those_that_work(
    start_registry: StartRegistry, send: Send, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A sweep that fails is logged and tried again at the next tick; nothing counted it, so a
    registry whose every sweep failed (nothing expiring, nothing tombstoned) raised no alert
    (`RegistrySweepsFailing`; found by a review, 2026-12-06)."""
    registry = await start_registry(sweep_interval_seconds=0.05)
    await send(created("counted"))
    await registry.wait_until_idle(30)
    assert registry.metrics is not None
    counted = registry.metrics.registry.get_sample_value
    sweep = registry.sweeper.sweep
    failing = True

    async def fails_for_a_while(now: datetime) -> Any:
        if failing:
            raise ConnectionRefusedError("the database went away")
        return await sweep(now)

    monkeypatch.setattr(registry.sweeper, "sweep", fails_for_a_while)

    async def failed(count: int) -> bool:
        return (counted("session_registry_sweeps_total", {"outcome": "failed"}) or 0) >= count

    await until(lambda: failed(3), 30, "three sweeps failed")
    ok = counted("session_registry_sweeps_total", {"outcome": "ok"})
    failing = False

    async def worked() -> bool:
        return (counted("session_registry_sweeps_total", {"outcome": "ok"}) or 0) > (ok or 0)

    await until(worked, 30, "a sweep worked again")
