"""The registry keeps the revocations topic to what it wrote (on the real broker, both backends).

A running gateway ignores a record that would un-revoke a session it holds revoked, but the log
cleaner keeps only the last record of each key: a gateway started after compaction read that
record and never learned the revocation (a review, 2026-12-06). The registry now follows the
topic and answers such a record with its revocation again, which is then the last record.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from aiokafka.partitioner import DefaultPartitioner
from registry_helpers import NOW, StartRegistry, created, logout, read_topic, sid
from sqlalchemy import delete, select, update

from fresh_topics import connection
from polling import until
from read_model.tables import revocations, sessions
from session_contracts.codec import decode_revocation, encode
from session_contracts.handles import record_key
from session_contracts.kafka_clients import new_producer
from session_contracts.models import SessionRevoked, SessionType, TerminationReason
from session_contracts.record_batches import INFLATED_MAX_BYTES
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]


def revoked_as(handle: str, valid_for: timedelta) -> bytes:
    return encode(
        SessionRevoked(
            tenant_id="acme",
            session_id=handle,
            session_type=SessionType.browser,
            revoked_at=NOW,
            reason=TerminationReason.logout,
            valid_until=NOW + valid_for,
        )
    )


async def last_under(kafka_bootstrap: str, topic: str, key: bytes) -> Any:
    """The last record under `key`: what the log cleaner keeps, and gateways started later read."""
    return [r for r in await read_topic(kafka_bootstrap, topic) if r.key == key][-1]


async def test_a_record_that_would_un_revoke_a_session_is_answered_with_its_revocation(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    registry = await start_registry()
    assert registry.guard is not None
    await send(created("revoked"), created("other"), created("open"))
    await send(logout("revoked", NOW), logout("other", NOW))
    await registry.wait_until_idle(30)
    key = record_key("acme", sid("revoked"))
    own = await last_under(kafka_bootstrap, topics.revocations, key)
    valid_until = decode_revocation(own.value).valid_until
    hostile = [
        None,  # an early tombstone
        b"{not a revocation",
        revoked_as(sid("other"), timedelta(days=1)),  # another session's value under its key
        revoked_as(sid("revoked"), timedelta(seconds=-1)),  # a revocation already past
    ]
    for n, value in enumerate(hostile, start=1):
        await send((key, value), topic=topics.revocations)

        async def rewritten(count: int = n) -> bool:
            return registry.guard is not None and registry.guard.rewrites >= count

        await until(rewritten, 30, f"hostile record {n} answered")
        await registry.wait_until_idle(30)
        last = await last_under(kafka_bootstrap, topics.revocations, key)
        assert last.value is not None, n
        kept = decode_revocation(last.value)
        assert (kept.session_id, kept.valid_until) == (sid("revoked"), valid_until), n
    assert registry.guard.rewrites == len(hostile)
    # A creation dated earlier, folded since, moves the session's own `valid_until` earlier
    # than the row's: the answer still lasts as long as the row, and is not answered itself
    # (answered with the shorter one, it was read back as short, and answered again, for good).
    await send(created("revoked", at=NOW - timedelta(hours=2), max_s=3 * 3600))
    await registry.wait_until_idle(30)
    await send((key, None), topic=topics.revocations)

    async def answered_again() -> bool:
        return registry.guard is not None and registry.guard.rewrites > len(hostile)

    await until(answered_again, 30, "the tombstone answered")
    await registry.wait_until_idle(30)
    last = await last_under(kafka_bootstrap, topics.revocations, key)
    assert decode_revocation(last.value).valid_until == valid_until
    on_topic = len(await read_topic(kafka_bootstrap, topics.revocations))

    async def own_answer_read() -> bool:  # every record of the topic checked, its answer too
        return registry.guard is not None and registry.guard.checked >= on_topic

    await until(own_answer_read, 30, "its answer read back")
    assert registry.guard.rewrites == len(hostile) + 1
    # a tombstone under a session never revoked (or whose revocation has passed) is left as it is
    checked = registry.guard.checked
    await send((record_key("acme", sid("open")), None), topic=topics.revocations)

    async def read() -> bool:
        return registry.guard is not None and registry.guard.checked > checked

    await until(read, 30, "the tombstone read")
    assert registry.guard.rewrites == len(hostile) + 1


async def test_a_batch_no_consumer_can_read_is_answered_for_every_key_of_its_partition(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    """A compression bomb under a revoked key: the guard, like every gateway, sees only a
    placeholder without a key, while the log cleaner compacts by the real keys and keeps the
    bomb as that key's last record. So every revocation held in that partition is written
    again after it (and none of another partition's)."""
    registry = await start_registry()
    assert registry.guard is not None
    names = [f"s{n}" for n in range(8)]
    await send(*(created(name) for name in names))
    await send(*(logout(name, NOW) for name in names))
    await registry.wait_until_idle(30)
    every = list(range(topics.partitions))
    where = {
        name: DefaultPartitioner()(record_key("acme", sid(name)), every, every) for name in names
    }
    target = where["s0"]
    in_target = sorted(name for name in names if where[name] == target)
    producer = new_producer(
        connection(kafka_bootstrap), compression_type="zstd", max_request_size=64_000_000
    )
    await producer.start()
    try:
        bomb = b"\x00" * (INFLATED_MAX_BYTES + 8_000_000)  # 2 KB of zstd
        key = record_key("acme", sid("s0"))
        await producer.send_and_wait(topics.revocations, bomb, key=key, partition=target)
    finally:
        await producer.stop()

    async def answered() -> bool:
        return registry.guard is not None and registry.guard.rewrites >= len(in_target)

    await until(answered, 30, "the partition's revocations written again")
    await registry.wait_until_idle(30)
    assert registry.guard.rewrites == len(in_target)
    records = await read_topic(kafka_bootstrap, topics.revocations)
    bombed = [r.offset for r in records if r.partition == target and r.key is None]
    assert len(bombed) == 1  # the placeholder
    for name in in_target:
        after = [
            r for r in records if r.key == record_key("acme", sid(name)) and r.offset > bombed[0]
        ]
        assert after and decode_revocation(after[-1].value).session_id == sid(name), name


async def test_the_answer_needs_no_session_row(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    """The record is written again from the revocation row alone: retention deletes a session's
    row 30 days past `expires_at`, before a mobile session's `valid_until`, and an expiry
    folded since changes it. Built from the session's row, the answer was skipped (a review,
    2026-12-06) and the hostile record stood."""
    registry = await start_registry()
    assert registry.guard is not None
    await send(created("deleted"), created("expired"))
    await send(logout("deleted", NOW), logout("expired", NOW))
    await registry.wait_until_idle(30)
    keys = {name: record_key("acme", sid(name)) for name in ("deleted", "expired")}
    published = {
        name: decode_revocation((await last_under(kafka_bootstrap, topics.revocations, key)).value)
        for name, key in keys.items()
    }
    s = sessions.c
    async with registry.engine.begin() as conn:
        await conn.execute(delete(sessions).where(s.session_id == sid("deleted")))
        await conn.execute(
            update(sessions)
            .where(s.session_id == sid("expired"))
            .values(state="expired", end_reason="idle", ended_at=NOW - timedelta(hours=1))
        )
    for key in keys.values():
        await send((key, None), topic=topics.revocations)

    async def answered() -> bool:
        return registry.guard is not None and registry.guard.rewrites >= len(keys)

    await until(answered, 30, "both tombstones answered")
    await registry.wait_until_idle(30)
    for name, key in keys.items():
        last = await last_under(kafka_bootstrap, topics.revocations, key)
        assert last.value is not None, name
        assert decode_revocation(last.value) == published[name], name


async def test_a_row_keeping_no_record_is_answered_from_its_sessions_row(
    start_registry: StartRegistry, send: Send, topics: Topics, kafka_bootstrap: str
) -> None:
    """A revocation row written before revision 1301, or by the release before it on the
    migrated schema (the schema goes first), keeps no record: the guard builds it from the
    session's row, as it did before (a review found such rows left unanswered). One whose
    session row is gone too cannot be built, and is left (logged)."""
    registry = await start_registry()
    assert registry.guard is not None
    await send(created("bare"), created("gone"))
    await send(logout("bare", NOW), logout("gone", NOW))
    await registry.wait_until_idle(30)
    keys = {name: record_key("acme", sid(name)) for name in ("bare", "gone")}
    published = decode_revocation(
        (await last_under(kafka_bootstrap, topics.revocations, keys["bare"])).value
    )
    r = revocations.c
    async with registry.engine.begin() as conn:
        await conn.execute(
            update(revocations).values(session_type=None, revoked_at=None, reason=None)
        )
        await conn.execute(delete(sessions).where(sessions.c.session_id == sid("gone")))
    checked = registry.guard.checked
    for key in keys.values():
        await send((key, None), topic=topics.revocations)

    async def both_read() -> bool:
        return registry.guard is not None and registry.guard.checked >= checked + 2

    await until(both_read, 30, "both tombstones read")
    await registry.wait_until_idle(30)
    assert registry.guard.rewrites == 1
    last = await last_under(kafka_bootstrap, topics.revocations, keys["bare"])
    assert decode_revocation(last.value) == published
    assert (await last_under(kafka_bootstrap, topics.revocations, keys["gone"])).value is None
    async with registry.engine.connect() as conn:
        rows = (await conn.execute(select(r.session_id, r.reason).order_by(r.session_id))).all()
    # the answer's row keeps the record now; the other is left bare
    assert {row.session_id: row.reason for row in rows} == {
        sid("bare"): "logout",
        sid("gone"): None,
    }
