"""A stored position past its partition's end is said, counted, and the sweeps wait (on the
real broker, both backends).

A position is stored only once the records before it are applied, and a partition's end never
goes back: one past it means the records there are not those applied (the topic deleted and
made again, its log cut short by an unclean leader election, a position moved by hand; before
stop 69, a record its producer placed past its batch). The registry skipped every record there
as applied already, counted the partition caught up, and the sweeps expired on the clock the
sessions whose activity it skipped, all without a word.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import pytest
from aiokafka import AIOKafkaProducer
from registry_helpers import StartRegistry, created, session_rows, sid
from sre_cli import cli, cli_env

from polling import until
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.topics import Topics
from session_registry.adapters.positions import overwrite_positions

pytestmark = pytest.mark.kafka


async def test_a_position_past_the_end_is_said_and_sweeps_wait_until_it_is_set_back(
    start_registry: StartRegistry,
    store: Store,
    producer: AIOKafkaProducer,
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    group = f"registry-{uuid.uuid4().hex[:8]}"
    # the group had applied 50 records of partition 0 when the topic was made again
    async with UnitOfWork(store) as uow:
        await overwrite_positions(uow, group, {(topics.events, 0): 50})
    for name in ("made-again-1", "made-again-2"):
        event = created(name)
        key = record_key("acme", event.session_id)
        await producer.send_and_wait(topics.events, encode(event), key=key, partition=0)
    fast = {"consumer_group": group, "registry_lag_refresh_seconds": 0.2}

    with caplog.at_level(logging.ERROR, logger="session_registry"):
        registry = await start_registry(**fast)

        async def noted() -> bool:
            return bool(registry.loop.past_end)

        await until(noted, 30, "the position past the end noted")
        await asyncio.sleep(1.0)  # five more asks of the ends: the moment would have moved
    assert registry.loop.past_end == {(topics.events, 0): (50, 2)}
    assert registry.loop.caught_up_at is None  # sweeps wait: the partition is not caught up
    assert registry.ready().detail["positions_past_end"] == [
        {"topic": topics.events, "partition": 0, "stored": 50, "end": 2}
    ]
    assert registry.metrics is not None
    assert registry.metrics.registry.get_sample_value("session_registry_positions_past_end") == 1
    said = [r.getMessage() for r in caplog.records if "past the partition's end" in r.getMessage()]
    assert len(said) == 1  # once, not at every ask
    assert f"partition 0: the position stored for consumer {group}, 50," in said[0]
    assert await session_rows(registry) == {}  # skipped as applied: what the operator repairs
    # the sweeper's warning, once the sweeps are five minutes behind, names it
    registry._made_at -= 400
    with caplog.at_level(logging.WARNING, logger="session_registry"):
        assert registry._warn_sweeps_behind(False)
    assert (
        f"waiting for {topics.events} partition 0, its stored position 50 past its end 2 "
        "(RegistryPositionPastEnd)" in caplog.text
    )

    # the runbook: stop the registries, set the position back, start them
    await registry.stop()
    env = cli_env(kafka_bootstrap, topics, db_url, group)
    shown = (await cli(env, "status")).out
    assert [topics.events, "0", "50", "2", "PAST", "END"] in [
        line.split() for line in shown.splitlines()
    ]
    assert "total lag 0" in shown  # no negative lag taken off the others'
    assert f"{topics.events} partition 0: the stored position is past the partition's end" in shown
    (row,) = [
        r
        for r in (await cli(env, "positions", "show", "--json")).lines()
        if (r["topic"], r["partition"]) == (topics.events, 0)
    ]
    assert (row["stored"], row["end"], row["lag"], row["past_end"]) == (50, 2, 0, True)

    # a restart before the repair (a crash, a rollout), the end past the stored position by
    # then: the registry forgot the note, swept on the clock and resolved the alert (stop 69's
    # note). It is kept in the database now, until the repair
    for n in range(60):
        event = created(f"later-{n}")
        key = record_key("acme", event.session_id)
        await producer.send_and_wait(topics.events, encode(event), key=key, partition=0)
    caplog.clear()
    with caplog.at_level(logging.ERROR, logger="session_registry"):
        registry = await start_registry(**fast)
        await until(noted, 30, "the note kept across the restart")
        await registry.wait_until_idle(30)
        await asyncio.sleep(1.0)
    assert registry.loop.past_end == {(topics.events, 0): (50, 2)}
    assert registry.loop.caught_up_at is None
    assert any("is not repaired" in r.getMessage() for r in caplog.records)
    await registry.stop()

    async with UnitOfWork(store) as uow:
        await overwrite_positions(uow, group, {(topics.events, 0): 0})
    registry = await start_registry(**fast)
    await registry.wait_until_idle(30)
    assert {sid("made-again-1"), sid("made-again-2")} <= set(await session_rows(registry))

    async def caught_up() -> bool:
        return registry.loop.caught_up_at is not None

    await until(caught_up, 30, "the group caught up")
    assert registry.loop.past_end == {}
