"""Termination commands on the real broker: by ids, by filter, applied once, within the tenant."""

from __future__ import annotations

import json
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from registry_helpers import (
    NOW,
    StartRegistry,
    created,
    logout,
    read_topic,
    session_rows,
    sid,
    table_rows,
)

from read_model.tables import applied_commands, revocations
from session_contracts.handles import record_key
from session_contracts.models import SessionFilter, SessionType, TerminateSessions
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


def terminate(**target: object) -> TerminateSessions:
    return TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        **target,  # type: ignore[arg-type]
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
        created("s1", tenant="globex"),  # same id, another tenant: untouched
    )
    await registry.wait_until_idle(30)
    command = terminate(session_ids=[sid("s1"), sid("tok-1"), sid("missing")])
    await send(command)
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert rows[sid("s2")]["state"] == "open"
    assert (await session_rows(registry, "globex"))[sid("s1", "globex")]["state"] == "open"
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

    events = await _topic_values(kafka_bootstrap, topics.events)
    ended = [(k, json.loads(v)) for k, v in events if v and b"session.terminated" in v]
    assert {e["event_id"] for _, e in ended} == {
        str(uuid.uuid5(command.command_id, sid(name))) for name in ("s1", "tok-1")
    }
    assert {k for k, _ in ended} == {record_key("acme", sid(n)) for n in ("s1", "tok-1")}
    revocation_records = await _topic_values(kafka_bootstrap, topics.revocations)
    revoked = [json.loads(v) for _, v in revocation_records]
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
        created("gone-1", user="ann", at=NOW - timedelta(hours=3)),  # expired at requested_at
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
