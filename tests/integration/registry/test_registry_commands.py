"""Termination commands on the real broker: by ids, by filter, applied once, within the tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import cast

import pytest
from registry_helpers import (
    NOW,
    StartRegistry,
    activity,
    created,
    expired,
    logout,
    read_topic,
    session_rows,
    sid,
    table_rows,
)

from read_model.tables import applied_commands, revocations
from session_contracts.handles import record_key
from session_contracts.models import SessionFilter, SessionType, TerminateSessions, as_utc
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


def terminate(requested_at: datetime = NOW, **target: object) -> TerminateSessions:
    if "filter" in target:
        target.setdefault("confirmed_at", requested_at)
    return TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=requested_at,
        tenant_id="acme",
        requested_by="admin-7",
        **target,
    )


async def _topic_values(bootstrap: str, topic: str) -> list[tuple[bytes, bytes | None]]:
    return [(r.key, r.value) for r in await read_topic(bootstrap, topic)]


async def test_terminate_by_ids_ends_any_type_of_the_tenant_once(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    registry = await start_registry()
    await send(
        created("s1"),
        created("s2"),
        created("tok-1", session_type=SessionType.access_token),
        # acme's very session id in another tenant: untouched (a handle of globex's own
        # would be left open even by a registry that ignored the tenant)
        created("s1", tenant="globex").model_copy(update={"session_id": sid("s1")}),
    )
    await registry.wait_until_idle(30)
    command = terminate(session_ids=[sid("s1"), sid("tok-1"), sid("missing")])
    await send(command)
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert rows[sid("s2")]["state"] == "open"
    assert (await session_rows(registry, "globex"))[sid("s1")]["state"] == "open"
    for one in (sid("s1"), sid("tok-1")):
        assert rows[one]["state"] == "terminated"
        assert rows[one]["end_reason"] == "admin" and rows[one]["ended_by"] == "admin-7"
    other = await table_rows(db_url, revocations, [revocations.c.tenant_id])
    assert {(r["tenant_id"], r["session_id"]) for r in other} == {
        ("acme", sid("s1")),
        ("acme", sid("tok-1")),
    }
    (applied,) = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert applied["command_id"] == str(command.command_id) and applied["terminated"] == 2

    # "missing" is not created yet: its end is kept (a row never created), not revoked yet
    assert rows[sid("missing")]["created_at"] is None
    assert rows[sid("missing")]["state"] == "terminated"
    named = ("s1", "tok-1", "missing")
    events = await _topic_values(kafka_bootstrap, topics.events)
    ended = [(k, json.loads(v)) for k, v in events if v and b"session.terminated" in v]
    assert {e["event_id"] for _, e in ended} == {
        str(uuid.uuid5(command.command_id, sid(name))) for name in named
    }
    assert {k for k, _ in ended} == {record_key("acme", sid(n)) for n in named}
    revocation_records = await _topic_values(kafka_bootstrap, topics.revocations)
    revoked = [json.loads(cast(bytes, v)) for _, v in revocation_records]  # no tombstone yet
    assert {(r["session_id"], r["session_type"]) for r in revoked} == {
        (sid("s1"), "browser"),
        (sid("tok-1"), "access_token"),
    }
    assert {k for k, _ in revocation_records} == {
        record_key("acme", sid(n)) for n in ("s1", "tok-1")
    }
    assert all(r["valid_until"] > r["revoked_at"] for r in revoked)

    # delivered again (a producer retry, a replayed topic): nothing changes
    snapshot = await session_rows(registry)
    await send(command)
    await registry.wait_until_idle(30)
    assert await session_rows(registry) == snapshot
    # the same records (read back partition by partition, in whichever order they come)
    assert sorted(await _topic_values(kafka_bootstrap, topics.events)) == sorted(events)
    assert len(await _topic_values(kafka_bootstrap, topics.revocations)) == len(revoked)


async def test_terminate_by_filter_ends_what_the_list_shows(
    start_registry: StartRegistry, send: Send, db_url: str
) -> None:
    registry = await start_registry()
    await send(
        created("b-1", user="ann"),
        created("m-1", user="ann", session_type=SessionType.mobile),
        created("b-2", user="bob"),
        created("api-1", user="ann", session_type=SessionType.api_client),  # never listed
        created("late-1", user="ann", at=NOW + timedelta(seconds=30)),  # after requested_at
        created("gone-1", user="ann", at=NOW - timedelta(hours=3), max_s=3600),
        expired("gone-1", NOW - timedelta(hours=2)),  # as the sweeper wrote it
    )
    await registry.wait_until_idle(30)
    await send(terminate(filter=SessionFilter(user_name="User ANN")))
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert {s for s, row in rows.items() if row["state"] == "terminated"} == {
        sid("b-1"),
        sid("m-1"),
    }
    (applied,) = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert applied["terminated"] == 2
    assert applied["target"] == {"filter": {"user_name": "User ANN"}}


async def test_a_filter_ends_nothing_created_after_the_confirmed_count(
    start_registry: StartRegistry, send: Send, db_url: str
) -> None:
    # The admin confirmed "2 sessions" at `confirmed`; "while-open" was created while the
    # dialog was open, before the request reached the API (requested_at = NOW).
    confirmed = NOW - timedelta(seconds=40)
    registry = await start_registry()
    await send(
        created("early-1", at=NOW - timedelta(minutes=10)),
        created("at-count", at=confirmed),
        created("while-open", at=confirmed + timedelta(seconds=5)),
    )
    await registry.wait_until_idle(30)
    await send(terminate(filter=SessionFilter(), confirmed_at=confirmed))
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert {s for s, row in rows.items() if row["state"] == "terminated"} == {
        sid("early-1"),
        sid("at-count"),
    }
    assert rows[sid("while-open")]["state"] == "open"
    (applied,) = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert applied["terminated"] == 2


async def test_a_creation_dated_ahead_is_created_when_appended_and_a_filter_ends_it(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    # A producer dates a sign-in a day ahead: a clock far off, or a hostile producer keeping a
    # session out of every termination by filter (one ends what was created by the confirmed
    # count). The broker's append time is when it was created (docs/security.md).
    registry = await start_registry()
    ahead = created("ahead-1", at=datetime.now(UTC) + timedelta(days=1))
    await send(ahead, created("now-1"))
    await registry.wait_until_idle(30)
    key = record_key("acme", sid("ahead-1"))
    (record,) = [r for r in await read_topic(kafka_bootstrap, topics.events) if r.key == key]
    appended = datetime.fromtimestamp(record.timestamp / 1000, UTC)
    rows = await session_rows(registry)
    assert as_utc(rows[sid("ahead-1")]["created_at"]) == appended
    assert as_utc(rows[sid("ahead-1")]["last_activity_at"]) == appended

    await send(terminate(requested_at=datetime.now(UTC), filter=SessionFilter()))
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert {s: row["state"] for s, row in rows.items()} == {
        sid("ahead-1"): "terminated",
        sid("now-1"): "terminated",
    }


async def test_a_termination_ends_open_sessions_past_their_deadline(
    start_registry: StartRegistry, send: Send, db_url: str
) -> None:
    # The registry's idle deadline can come before the platform's (activity is reported at
    # most once a minute, and may lie unread on a partition behind), and the sweeper leaves
    # such a session open: one the platform may still serve. A termination by id or by filter
    # ends it, and revokes it, however long ago its deadline passed (until 2026-12-06, only
    # within the grace: a session 3 minutes past it was passed over). What is ended stays.
    registry = await start_registry(activity_grace_seconds=120, sweep_interval_seconds=0)
    start = NOW - timedelta(hours=1)
    await send(
        created("idle-30s-ago", at=start, idle_s=3600 - 30, user="ann"),
        created("idle-3min-ago", at=start, idle_s=3600 - 180, user="ann"),
        created("picked-30s-ago", at=start, idle_s=3600 - 30, user="bob"),
        created("picked-3min-ago", at=start, idle_s=3600 - 180, user="bob"),
        created("picked-ended", at=start, user="bob"),
        logout("picked-ended", start + timedelta(seconds=60)),
    )
    await registry.wait_until_idle(30)
    await send(
        terminate(filter=SessionFilter(user_id="ann")),
        terminate(session_ids=[sid("picked-30s-ago"), sid("picked-3min-ago"), sid("picked-ended")]),
    )
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    picked = ("idle-30s-ago", "idle-3min-ago", "picked-30s-ago", "picked-3min-ago")
    assert {rows[sid(s)]["state"] for s in picked} == {"terminated"}
    assert (rows[sid("picked-ended")]["state"], rows[sid("picked-ended")]["end_reason"]) == (
        "terminated",
        "logout",
    )
    revoked = await table_rows(db_url, revocations, [revocations.c.session_id])
    assert {r["session_id"] for r in revoked} == {sid(s) for s in (*picked, "picked-ended")}
    terms = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert sorted(r["terminated"] for r in terms) == [2, 2]


async def test_a_v2_filter_command_is_upcast_and_ends_what_v2_ended(
    start_registry: StartRegistry, send: Send, topics: Topics
) -> None:
    # A v2 command (no confirmed_at) still on the topic at the upgrade: bounded by requested_at.
    registry = await start_registry()
    await send(
        created("before", at=NOW - timedelta(seconds=30)),
        created("after", at=NOW + timedelta(seconds=30)),
    )
    await registry.wait_until_idle(30)
    command_id = str(uuid.uuid4())
    v2 = {
        "type": "sessions.terminate",
        "schema_version": 2,
        "command_id": command_id,
        "requested_at": NOW.isoformat(),
        "tenant_id": "acme",
        "requested_by": "admin-7",
        "filter": {},
    }
    await send((record_key("acme", command_id), json.dumps(v2).encode()), topic=topics.commands)
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert rows[sid("before")]["state"] == "terminated"
    assert rows[sid("after")]["state"] == "open"


async def test_a_platform_logout_is_revoked_too(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    registry = await start_registry()
    await send(logout("s9", NOW - timedelta(seconds=10)))  # before its creation arrives
    await registry.wait_until_idle(30)
    assert await _topic_values(kafka_bootstrap, topics.revocations) == []
    await send(created("s9"))
    await registry.wait_until_idle(30)
    (record,) = await _topic_values(kafka_bootstrap, topics.revocations)
    assert record[0] == record_key("acme", sid("s9"))
    assert record[1] is not None and json.loads(record[1])["reason"] == "logout"
    assert (await session_rows(registry))[sid("s9")]["state"] == "terminated"


async def test_a_session_named_before_its_creation_is_folded_ends_and_is_revoked_when_created(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str, db_url: str
) -> None:
    """A command by ids may be read before the creation of a session it names (the creation
    comes on another topic, and the registry reads the two in no set order). It must not
    match nothing: the session would then stay open for good, never revoked."""
    registry = await start_registry()
    await send(activity("seen", NOW - timedelta(minutes=1)))  # its creation is not folded yet
    await registry.wait_until_idle(30)
    command = terminate(session_ids=[sid("early"), sid("seen")])
    await send(command)
    await registry.wait_until_idle(30)
    assert await _topic_values(kafka_bootstrap, topics.revocations) == []  # no type known yet
    (applied,) = await table_rows(db_url, applied_commands, [applied_commands.c.command_id])
    assert applied["terminated"] == 0  # none ended yet: they are not created
    assert registry.metrics is not None
    counted = registry.metrics.registry.get_sample_value
    assert counted("session_registry_terminations_awaiting_creation_total") == 2
    assert counted("session_registry_sessions_terminated_total") == 0

    # created before and after the command's requested_at: both named, both ended (as they
    # would be, had their creations been folded first)
    await send(created("early"), created("seen", at=NOW + timedelta(minutes=1)))
    await send(created("later", at=NOW + timedelta(minutes=5)))  # not named: stays open
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert rows[sid("later")]["state"] == "open"
    for name in ("early", "seen"):
        row = rows[sid(name)]
        assert (row["state"], row["end_reason"], row["ended_by"]) == (
            "terminated",
            "admin",
            "admin-7",
        )
        assert as_utc(row["ended_at"]) == NOW
    revoked = {
        k: json.loads(cast(bytes, v))
        for k, v in await _topic_values(kafka_bootstrap, topics.revocations)
    }
    assert set(revoked) == {record_key("acme", sid(n)) for n in ("early", "seen")}
    assert all(r["reason"] == "admin" and r["session_type"] == "browser" for r in revoked.values())
