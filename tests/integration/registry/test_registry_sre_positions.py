"""`session-registry positions show|set`: the positions in the database move, only while no
registry of the group runs, and the registry resumes from them."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from aiokafka import AIOKafkaProducer
from registry_helpers import StartRegistry, created, session_rows, sid, table_rows
from sre_cli import cli, cli_env

from read_model.tables import consumer_positions
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import SessionCreated
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka


async def _send(producer: AIOKafkaProducer, topics: Topics, event: SessionCreated) -> datetime:
    """Send; return the record's timestamp (what --to-datetime looks up): the broker's append
    time, as `sessions.events` is created with it."""
    sent = await producer.send_and_wait(
        topics.events, encode(event), key=record_key(event.tenant_id, event.session_id)
    )
    return datetime.fromtimestamp(sent.timestamp / 1000, UTC)


async def _stored(db_url: str, group: str) -> dict[tuple[str, int], int]:
    rows = await table_rows(db_url, consumer_positions, [consumer_positions.c.partition])
    return {(r["topic"], r["partition"]): r["next_offset"] for r in rows if r["consumer"] == group}


@pytest.mark.slow
async def test_positions_move_only_while_no_registry_runs(
    start_registry: StartRegistry,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
) -> None:
    group = f"registry-{uuid.uuid4().hex[:8]}"
    env = cli_env(kafka_bootstrap, topics, db_url, group)
    registry = await start_registry(consumer_group=group)
    await _send(producer, topics, created("s1"))
    s2_appended = await _send(producer, topics, created("s2"))
    await registry.wait_until_idle(60)
    caught_up = await _stored(db_url, group)

    refused = await cli(env, "positions", "set", "--to-earliest", code=3)
    assert "refused" in refused.err and f"consumer group {group!r}" in refused.err
    assert await _stored(db_url, group) == caught_up

    await registry.stop()
    shown = {
        (r["topic"], r["partition"]): r
        for r in (await cli(env, "positions", "show", "--json")).lines()
    }
    assert {
        k: r["stored"]
        for k, r in shown.items()
        if r["stored"] is not None and k[0] == topics.events
    } == {k: v for k, v in caught_up.items() if k[0] == topics.events}
    assert all(r["stored"] in (None, r["end"]) for r in shown.values())
    assert all(r["lag"] == 0 for r in shown.values())
    human = await cli(env, "positions", "show")
    assert f"consumer {group}" in human.out and topics.commands in human.out

    # records arrive while it is stopped; skipped by --to-latest
    s3_appended = await _send(producer, topics, created("s3"))
    assert s3_appended > s2_appended + timedelta(milliseconds=1)  # a registry ran in between
    dry = await cli(env, "positions", "set", "--to-latest", "--dry-run", "--json")
    assert len(dry.lines()) == topics.partitions
    assert await _stored(db_url, group) == caught_up  # a dry run writes nothing
    await cli(env, "positions", "set", "--to-latest")
    skipping = await start_registry(consumer_group=group)
    await skipping.wait_until_idle(60)
    assert set(await session_rows(skipping)) == {sid("s1"), sid("s2")}
    await skipping.stop()

    # back to the first record stamped after s2's: s3, read again, applied
    after_s2 = (s2_appended + timedelta(milliseconds=1)).isoformat()
    moved = await cli(env, "positions", "set", "--to-datetime", after_s2, "--json")
    s3_partition = next(
        r["partition"]
        for r in moved.lines()
        if r["before"] is not None and r["after"] < r["before"]
    )
    rereading = await start_registry(consumer_group=group)
    await rereading.wait_until_idle(60)
    assert set(await session_rows(rereading)) == {sid("s1"), sid("s2"), sid("s3")}
    await rereading.stop()
    assert (topics.events, s3_partition) in await _stored(db_url, group)

    # one partition, to an offset; out of the log's bounds is refused
    await cli(env, "positions", "set", "--to-offset", "0", "--partition", str(s3_partition))
    stored = await _stored(db_url, group)
    assert stored[(topics.events, s3_partition)] == 0
    assert all(
        v > 0 for (t, p), v in stored.items() if t == topics.events and caught_up.get((t, p))
    )
    far = await cli(env, "positions", "set", "--to-offset", "99999", code=2)
    assert "is outside" in far.err
    both = await cli(env, "positions", "set", "--to-latest", "--to-earliest", code=2)
    assert "exactly one of" in both.err
