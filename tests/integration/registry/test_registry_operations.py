"""The registry's operations port on the real broker: /metrics counts what the batches did,
/readyz follows the lag, /healthz follows the consumer loop, the outbox shows its backlog."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from registry_helpers import NOW, StartRegistry, created, logout
from sqlalchemy import insert

from polling import until
from read_model.tables import outbox
from read_model.unit_of_work import UnitOfWork
from session_contracts.codec import encode
from session_contracts.models import TerminateSessions
from session_contracts.topics import Topics
from session_registry.adapters.positions import load_positions
from session_registry.bootstrap import Registry

pytestmark = pytest.mark.kafka
Send = Callable[..., Awaitable[None]]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


async def scrape(port: int) -> Samples:
    """Every sample /metrics serves, by name and labels."""
    async with httpx.AsyncClient() as client:
        response = await client.get(f"http://127.0.0.1:{port}/metrics")
    assert response.status_code == 200
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(response.text)
        for s in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, frozenset(labels.items()))]


async def probe(port: int, path: str) -> httpx.Response:
    async with httpx.AsyncClient() as client:
        return await client.get(f"http://127.0.0.1:{port}{path}")


async def serving(start_registry: StartRegistry, **overrides: object) -> tuple[Registry, int]:
    registry = await start_registry(registry_http_port=0, **overrides)
    port = registry.serve_operations()
    await until(lambda: _answers(port), 30, "the operations port answers")
    return registry, port


async def _answers(port: int) -> bool:
    try:
        await probe(port, "/healthz")
    except httpx.TransportError:
        return False
    return True


async def test_metrics_count_events_by_type_dead_letters_by_reason_and_commands(
    start_registry: StartRegistry, send: Send, topics: Topics
) -> None:
    registry, port = await serving(start_registry)
    await send(created("m1"), created("m2"), logout("m2", NOW))
    await send((b"bad", b'{"type": "session.created", '), topic=topics.events)
    # applied by its value, counted: a producer keys by something else than <tenant>/<handle>
    await send((b"u-1", encode(created("m3"))), topic=topics.events)
    # dated ahead of the broker: taken as created when appended, and counted
    await send(created("m4", at=datetime.now(UTC) + timedelta(days=1)))
    await registry.wait_until_idle(30)  # m1 is listed before an admin can end it
    await send(
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW,
            tenant_id="acme",
            requested_by="admin-7",
            session_ids=[created("m1").session_id],
        )
    )
    await registry.wait_until_idle(30)
    await until(lambda: _ready(port), 30, "ready")

    samples = await scrape(port)
    applied = "session_registry_events_applied_total"
    assert value(samples, applied, type="session.created") == 4
    assert value(samples, "session_registry_creations_dated_ahead_total") == 1
    assert value(samples, "session_registry_events_producer_dated") == 0  # the broker dates them
    miskeyed = "session_registry_records_miskeyed_total"
    assert value(samples, miskeyed, record="event") == 1
    assert value(samples, miskeyed, record="command") == 0
    # the logout, and the command's own session.terminated back through the event log
    assert value(samples, applied, type="session.terminated") == 2
    dead = "session_registry_dead_letters_total"
    assert value(samples, dead, reason="malformed_json") == 1
    assert value(samples, dead, reason="unknown_type") == 0
    assert value(samples, "session_registry_commands_applied_total") == 1
    assert value(samples, "session_registry_sessions_terminated_total") == 1
    assert value(samples, "session_registry_outbox_published_total") >= 1  # the revocation
    assert value(samples, "session_registry_batch_seconds_count") >= 1
    lags = {
        (dict(labels)["topic"], dict(labels)["partition"]): v
        for (name, labels), v in samples.items()
        if name == "session_registry_consumer_lag"
    }
    assert len(lags) == 2 * topics.partitions  # events and commands, every partition
    assert set(lags.values()) == {0}
    assert value(samples, "session_registry_outbox_backlog") == 0
    assert value(samples, "session_registry_outbox_oldest_age_seconds") == 0
    assert value(samples, "session_registry_last_commit_age_seconds") >= 0
    assert ("process_cpu_seconds_total", frozenset()) in samples  # process metrics too
    assert (await probe(port, "/healthz")).status_code == 200
    ready = await probe(port, "/readyz")
    assert ready.status_code == 200, ready.text
    assert ready.json()["lag"] == 0


async def test_readyz_is_503_while_records_wait_and_200_once_applied(
    start_registry: StartRegistry, send: Send
) -> None:
    registry, port = await serving(start_registry, registry_ready_max_lag=0)
    await until(lambda: _ready(port), 30, "ready on empty topics")
    async with registry.loop.gate:  # no batch commits while the gate is held
        await send(*(created(f"r{i}") for i in range(5)))

        async def lagging() -> bool:
            # the ends known from the fetches made before the loop blocked on the gate
            return sum(registry.loop.lag().values()) >= 1

        await until(lagging, 30, "the registry sees the new records")
        answer = await probe(port, "/readyz")
        assert answer.status_code == 503, answer.text
        assert answer.json()["status"] == "not ready"
        assert answer.json()["lag"] >= 1
        lag = await scrape(port)
        assert sum(v for (n, _), v in lag.items() if n == "session_registry_consumer_lag") >= 1
    await registry.wait_until_idle(30)
    await until(lambda: _ready(port), 30, "ready once the records are applied")


async def test_the_lag_counts_the_records_that_arrive_while_the_loop_is_stuck_on_a_batch(
    start_registry: StartRegistry, send: Send, topics: Topics
) -> None:
    registry, port = await serving(start_registry, registry_lag_refresh_seconds=0.2)
    loop = registry.loop
    await registry.wait_until_idle(30)

    def fetched() -> int:
        """What the consumer's fetches alone know is waiting."""
        ends = {(tp.topic, tp.partition): loop.consumer.highwater(tp) or 0 for tp in assigned()}
        return sum(max(0, end - loop.positions.get(key, 0)) for key, end in ends.items())

    def assigned() -> set[Any]:
        return set(loop.consumer.assignment())

    sent = 0
    async with loop.gate:  # the loop takes a batch, then waits to apply it
        # The loop takes at most two fetches before it waits, and the consumer fetches from
        # a broker again only once what it fetched from it has been taken: the fourth round,
        # sent once the third is counted, is never fetched (on the code before, the lag
        # stopped short within the first round).
        for n in range(4):
            await send(*(created(f"stuck-{n}-{i}") for i in range(30)))
            sent += 30

            async def counted(expected: int = sent) -> bool:
                return sum(loop.lag().values()) == expected

            await until(counted, 30, f"the lag counts round {n + 1}")
        assert fetched() < sent  # the fetches alone under-report it
        samples = await scrape(port)
        lags = [v for (n, _), v in samples.items() if n == "session_registry_consumer_lag"]
        assert sum(lags) == sent
        assert (await probe(port, "/readyz")).json()["lag"] == sent
    await registry.wait_until_idle(30)
    assert sum(loop.lag().values()) == 0


async def test_idle_is_never_said_of_a_batch_whose_records_wait_in_the_outbox(
    start_registry: StartRegistry, send: Send, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = await start_registry()
    loop = registry.loop
    session = created("idle-1")
    await send(session)
    await registry.wait_until_idle(30)
    committed = False

    async def positions_once_the_batch_committed(*args: Any) -> Any:
        # the command's batch commits between the broker's ends and the positions being read
        nonlocal committed
        if not committed:
            committed = True
            before = dict(loop.positions)
            loop.gate.release()

            async def moved() -> bool:
                return loop.positions != before

            await until(moved, 30, "the command's batch committed")
        return await load_positions(*args)

    async with registry.relay.paused(30):  # what the batch writes stays in the outbox
        await loop.gate.acquire()  # the command's batch waits
        command = TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW,
            tenant_id="acme",
            requested_by="admin-7",
            session_ids=[session.session_id],
        )
        await send(command)
        monkeypatch.setattr(
            "session_registry.bootstrap.load_positions", positions_once_the_batch_committed
        )
        with pytest.raises(TimeoutError):  # its revocation waits in the outbox: not idle
            await registry.wait_until_idle(2)
        assert committed
    await registry.wait_until_idle(30)  # relayed once the pause ends


async def _ready(port: int) -> bool:
    return (await probe(port, "/readyz")).status_code == 200


async def test_healthz_is_503_once_the_consumer_loop_is_gone(start_registry: StartRegistry) -> None:
    registry, port = await serving(start_registry)
    assert (await probe(port, "/healthz")).status_code == 200
    consumer = next(t for t in registry._tasks if t.get_name() == "registry-consumer")
    consumer.cancel()
    await asyncio.gather(consumer, return_exceptions=True)
    answer = await probe(port, "/healthz")
    assert answer.status_code == 503
    assert answer.json() == {"status": "stalled", **answer.json(), "consumer_running": False}


async def test_outbox_backlog_and_oldest_age_are_read_on_each_scrape(
    start_registry: StartRegistry,
) -> None:
    registry, port = await serving(start_registry)
    queued_at = datetime.now(UTC) - timedelta(minutes=5)
    async with registry.relay.paused(10):  # nothing is relayed meanwhile
        async with UnitOfWork(registry.store) as uow:
            old = {"topic": "t", "key": b"k1", "value": b"v", "created_at": queued_at}
            await uow.conn.execute(insert(outbox), old)
            # queued now: the database's default
            await uow.conn.execute(insert(outbox), {"topic": "t", "key": b"k2", "value": None})
        samples = await scrape(port)
        async with UnitOfWork(registry.store) as uow:
            await uow.conn.execute(outbox.delete())
    assert value(samples, "session_registry_outbox_backlog") == 2
    assert value(samples, "session_registry_outbox_oldest_age_seconds") >= 299


async def test_metrics_off_serves_no_metrics_and_keeps_applying(
    start_registry: StartRegistry, send: Send
) -> None:
    registry, port = await serving(start_registry, registry_metrics=False)
    assert registry.metrics is None  # nothing is kept: no counter, no collector
    await send(created("off1"), created("off2"), logout("off2", NOW))
    await send(
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=NOW,
            tenant_id="acme",
            requested_by="admin-7",
            session_ids=[created("off1").session_id],
        )
    )
    await registry.wait_until_idle(30)  # the batches, the command and its relay all ran
    await registry.sweep_once()
    assert (await probe(port, "/metrics")).status_code == 404
    assert (await probe(port, "/healthz")).status_code == 200
    await until(lambda: _ready(port), 30, "ready without metrics")


async def test_a_replica_beyond_the_partitions_is_ready_with_none(
    start_registry: StartRegistry, unmade_topics: Topics
) -> None:
    # one group, topics of one partition each (events, commands): of three replicas, one is
    # given none, and a rollout waits for every replica's readiness
    own = {"topic_prefix": unmade_topics.prefix, "topic_partitions": unmade_topics.partitions}
    group = f"registry-{uuid.uuid4().hex[:8]}"
    replicas = [await serving(start_registry, consumer_group=group, **own) for _ in range(3)]

    answers: list[dict[str, Any]] = []

    async def settled() -> bool:
        # every replica ready with the group settled: both partitions held, each once (while
        # the third joins, the others' partitions are revoked and handed out again)
        answers[:] = [(await probe(port, "/readyz")).json() for _, port in replicas]
        ready = all(a["status"] == "ready" for a in answers)
        return ready and sum(a["partitions"] for a in answers) == 2

    await until(settled, 60, "every replica ready, the partitions handed out")
    assert sorted(a["partitions"] for a in answers) == [0, 1, 1], answers


async def test_the_outbox_age_is_by_the_clock_that_stamped_it(
    start_registry: StartRegistry,
) -> None:
    """The database stamps an outbox row (`created_at`'s default), and the age was taken
    against the registry's clock: one an hour ahead of the database's raised
    RegistryOutboxStuck for a row queued a moment ago, one behind delayed it (a review,
    stop 72). Here the registry's clock runs an hour ahead."""
    registry, port = await serving(
        start_registry, clock=lambda: datetime.now(UTC) + timedelta(hours=1)
    )
    async with registry.relay.paused(10):  # nothing is relayed meanwhile
        async with UnitOfWork(registry.store) as uow:
            await uow.conn.execute(insert(outbox), {"topic": "t", "key": b"k", "value": None})
        samples = await scrape(port)
        async with UnitOfWork(registry.store) as uow:
            await uow.conn.execute(outbox.delete())
    assert value(samples, "session_registry_outbox_backlog") == 1
    assert value(samples, "session_registry_outbox_oldest_age_seconds") < 60
