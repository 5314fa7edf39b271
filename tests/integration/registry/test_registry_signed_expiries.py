"""Only the registry writes `session.expired`: with `SESSIONS_RECORD_SIGNING_KEYS` it signs its
own and dead-letters anyone else's (on the real broker, both backends).

Before 2026-12-06 a producer allowed on the events topic (every platform service, under the
reference ACLs) could expire a session the platform still served: the registry ends only
open rows, so no admin's termination reached it, and it left the admin's list. It was counted
(`RegistryExpiriesNotDue`), not refused: the fold cannot tell by the content.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from registry_helpers import (
    NOW,
    StartRegistry,
    created,
    expired,
    past_the_appends,
    read_topic,
    session_rows,
    sibling_database,
    sid,
    table_rows,
)

from read_model.tables import sessions
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import TerminateSessions
from session_contracts.record_signing import SIGNATURE_HEADER, RecordSigner
from session_contracts.topics import Topics
from session_registry.service_layer.rebuild import rebuild
from session_registry.service_layer.session_log import session_records

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]
KEY = "a-record-signing-key-of-the-registry-for-tests"
OLD_KEY = "the-key-the-registry-signed-with-before-this-one"


def reasons(letters: list[object]) -> list[str]:
    return [dict(letter.headers)["dlq.reason"].decode() for letter in letters]  # type: ignore[attr-defined]


async def test_the_registry_signs_its_expiries_and_dead_letters_anyone_elses(
    start_registry: StartRegistry,
    send: Send,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # not NOW: `past_the_appends`
    registry = await start_registry(record_signing_keys=f"{KEY},{OLD_KEY}")
    start = now - timedelta(hours=1)
    recent = now - timedelta(minutes=5)
    await send(
        created("idle", at=start, idle_s=600),
        created("live", at=recent),
        created("other", at=recent),
    )
    await registry.wait_until_idle(30)
    # a producer allowed on the events topic expires two live sessions: one bare, one with a
    # signature of its own making
    await send(expired("live", now - timedelta(minutes=1)))
    forged = expired("other", now - timedelta(minutes=1))
    key, value = record_key("acme", sid("other")), encode(forged)
    made_up = RecordSigner(["an-attackers-key-which-is-long-enough-too"]).headers(key, value)
    await send((key, value), headers=list(made_up))
    assert (await registry.sweep_once(past_the_appends())).expired == 1
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert rows[sid("idle")]["state"] == "expired"
    assert (rows[sid("live")]["state"], rows[sid("other")]["state"]) == ("open", "open")
    events = await read_topic(kafka_bootstrap, topics.events)
    [own] = [
        r for r in events if r.key == record_key("acme", sid("idle")) and b"expired" in r.value
    ]
    assert [name for name, _ in own.headers] == [SIGNATURE_HEADER]
    assert RecordSigner([KEY]).verify(own.key, own.value, own.headers)  # signed by the first
    assert not RecordSigner([OLD_KEY]).verify(own.key, own.value, own.headers)
    said = reasons(await read_topic(kafka_bootstrap, topics.dead_letters))
    assert len(said) == 2
    assert any("carries no registry signature" in reason for reason in said)
    assert any("signature does not verify" in reason for reason in said)
    # `session-registry events` tells an SRE which is which
    verdicts = {}
    for name in ("idle", "live", "other"):
        async for found in session_records(
            registry.settings, topics, "acme", sid(name), expiries=registry.settings.signed_expiries
        ):
            if found.body["record"]["type"] == "session.expired":
                verdicts[name] = found.body["registry_signature"]
    assert verdicts == {"idle": "valid", "live": "none", "other": "invalid"}

    # an admin's termination still reaches the live session, and revokes it
    await send(
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=now,
            tenant_id="acme",
            requested_by="admin-1",
            session_ids=[sid("live")],
        )
    )
    await registry.wait_until_idle(30)
    assert (await session_rows(registry))[sid("live")]["state"] == "terminated"
    revoked = [
        r
        for r in await read_topic(kafka_bootstrap, topics.revocations)
        if r.key == record_key("acme", sid("live"))
    ]
    assert revoked and revoked[-1].value is not None

    # a rebuild reads the log as the live registry does: the same rows
    into, drop = await sibling_database(db_url, tmp_path)
    try:
        report = await rebuild(
            registry.settings,
            topics,
            into,
            "rebuild-signed",
            expiries=registry.settings.signed_expiries,
        )
        rebuilt = {
            row["session_id"]: row["state"]
            for row in await table_rows(into, sessions, [sessions.c.session_id])
        }
    finally:
        await drop()
    assert report.dead_letters == 2
    # the termination came back through the log as the registry's session.terminated
    assert rebuilt == {sid("idle"): "expired", sid("live"): "terminated", sid("other"): "open"}


async def test_an_unsigned_expiry_appended_before_the_keys_is_applied(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    """`SESSIONS_RECORD_SIGNING_SINCE`: the log written before the keys were set holds the
    registry's own expiries, unsigned; the broker dated them (LogAppendTime), so they are
    applied; one appended since is not."""
    await send(created("before"), created("after"))
    await send(expired("before", NOW - timedelta(minutes=1)))
    events = await read_topic(kafka_bootstrap, topics.events)
    since = max(r.timestamp for r in events) + 1  # after every record so far
    registry = await start_registry(
        record_signing_keys=KEY,
        record_signing_since=datetime.fromtimestamp(since / 1000, UTC),
    )
    await send(expired("after", NOW - timedelta(minutes=1)))
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    assert (rows[sid("before")]["state"], rows[sid("after")]["state"]) == ("expired", "open")
    assert len(await read_topic(kafka_bootstrap, topics.dead_letters)) == 1
