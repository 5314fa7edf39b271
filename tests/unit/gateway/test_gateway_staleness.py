"""Failing closed on staleness, on an injected clock: the watcher counts as current only while
it keeps confirming it has read every partition up to the end a fetch answer reported.

The consumer is a script (`ScriptedConsumer`) standing in for aiokafka's: each `getmany` takes
the next step the test gives it (records, a new fetch answer or none), so lag, silence and
recovery happen exactly when the test says, on a clock that moves only when the test says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
from aiokafka import TopicPartition
from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.metrics import GatewayCollector
from session_contracts.handles import record_key, session_handle

TOPIC = "sessions.revocations"
P0, P1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)
BOUND = 15.0
SESSION = {"x-session-id": "live-session-1"}


class Clock:
    """A monotonic clock that moves only when told."""

    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class Step:
    """What one `getmany` returns and what the broker's last answers said."""

    records: dict[TopicPartition, int] = field(default_factory=dict)  # records now returned
    answered: tuple[TopicPartition, ...] = ()  # partitions a fetch answer came back for
    highwater: dict[TopicPartition, int] = field(default_factory=dict)  # ends it reported
    stable: dict[TopicPartition, int] = field(default_factory=dict)  # last stable offsets too
    skipped: dict[TopicPartition, int] = field(default_factory=dict)  # offsets without records
    """Offsets the position moves past with no record handed over, after the records: a
    transaction's marker, an aborted transaction's records (aiokafka steps over both)."""


@dataclass
class _Record:
    key: bytes
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...] = ()


class ScriptedConsumer:
    """The part of AIOKafkaConsumer the follower uses, driven step by step by the test."""

    def __init__(self, clock: Clock, ends: dict[TopicPartition, int]) -> None:
        self._clock = clock
        self._ends = dict(ends)  # what end_offsets answers at start-up
        self._positions = dict.fromkeys(ends, 0)
        self._highwater: dict[TopicPartition, int] = {}
        self._stable: dict[TopicPartition, int] = {}
        self._polled: dict[TopicPartition, int] = {}
        self._steps: asyncio.Queue[Step] = asyncio.Queue()
        self._taken = 0
        self._client = self
        self.started = asyncio.Event()  # the follower has asked for its first batch

    # the script
    async def step(self, step: Step) -> None:
        """Give the follower one `getmany` and wait until it has dealt with it."""
        await self._steps.put(step)
        await self._steps.join()

    # AIOKafkaConsumer's surface
    async def fetch_all_metadata(self) -> Any:
        return self

    @property
    def cluster(self) -> Any:  # the client's metadata, which the follower checks each round
        return self

    def partitions_for_topic(self, topic: str) -> set[int]:
        return {tp.partition for tp in self._ends}

    def assign(self, tps: list[TopicPartition]) -> None:
        pass

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self._positions[tp] = offset

    async def seek_to_beginning(self, tp: TopicPartition) -> None:
        self._positions[tp] = 0

    async def end_offsets(self, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
        return {tp: self._ends[tp] for tp in tps}

    async def getmany(self, *, timeout_ms: int, max_records: int) -> Any:
        self.started.set()
        if self._taken:
            self._steps.task_done()  # the previous step is fully dealt with
        step = await self._steps.get()
        self._taken += 1
        for tp in step.answered:
            self._polled[tp] = int(self._clock.now * 1000) + self._taken  # a new answer
            self._highwater[tp] = step.highwater.get(tp, self._highwater.get(tp, 0))
            self._stable[tp] = step.stable.get(tp, -1)
        batches = {}
        for tp, count in step.records.items():
            start = self._positions[tp]
            batches[tp] = [
                _Record(f"k{tp.partition}-{start + n}".encode(), None) for n in range(count)
            ]
            self._positions[tp] += count
        for tp, count in step.skipped.items():
            self._positions[tp] += count
        return batches

    async def position(self, tp: TopicPartition) -> int:
        return self._positions[tp]

    def last_poll_timestamp(self, tp: TopicPartition) -> int | None:
        return self._polled.get(tp)

    def highwater(self, tp: TopicPartition) -> int | None:
        return self._highwater.get(tp)

    def last_stable_offset(self, tp: TopicPartition) -> int | None:
        return self._stable.get(tp, -1)  # -1: as aiokafka reports it without transactions


async def whoami(request: Request) -> JSONResponse:
    return JSONResponse({"session_id": getattr(request.state, "session_credential", None)})


@contextlib.asynccontextmanager
async def following(
    clock: Clock, ends: dict[TopicPartition, int], **settings: Any
) -> AsyncIterator[tuple[SessionGateway, ScriptedConsumer, httpx.AsyncClient]]:
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1",
            gateway_tenant_id="acme",
            gateway_max_staleness_seconds=BOUND,
            **settings,
        ),
        monotonic=clock,
    )
    consumer = ScriptedConsumer(clock, ends)
    follow = asyncio.create_task(gateway.watcher._follow(consumer))
    async with asyncio.timeout(10):
        await consumer.started.wait()
    app = Starlette(routes=[Route("/{path:path}", whoami)])
    gateway.install(app, manage_lifespan=False)
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")
    try:
        yield gateway, consumer, client
    finally:
        follow.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await follow
        await client.aclose()


async def status(client: httpx.AsyncClient, headers: dict[str, str] | None = None) -> int:
    return (await client.get("/api/me", headers=headers)).status_code


async def caught_up(consumer: ScriptedConsumer, ends: dict[TopicPartition, int]) -> None:
    """A fetch answer for every partition, the position at the end it reports."""
    await consumer.step(Step(answered=(P0, P1), highwater=ends))


async def test_goes_stale_past_the_bound_without_a_confirming_fetch_then_recovers() -> None:
    clock = Clock()
    ends = {P0: 3, P1: 0}
    async with following(clock, ends) as (gateway, consumer, client):
        assert gateway.state == "starting"
        assert await status(client, SESSION) == 503
        await consumer.step(Step(records={P0: 3}, answered=(P0, P1), highwater=ends))
        assert gateway.ready and gateway.state == "current"
        assert await status(client, SESSION) == 200

        # the broker keeps answering: current however much time passes
        for _ in range(5):
            clock.now += BOUND - 1
            await caught_up(consumer, ends)
            assert await status(client, SESSION) == 200
        assert gateway.staleness_seconds <= BOUND - 1

        await caught_up(consumer, ends)
        confirmed = clock.now  # the previous look was at this time too

        # then it stops answering (a broker outage): getmany still returns, empty
        for _ in range(3):
            clock.now += BOUND / 4
            await consumer.step(Step())
        clock.now = confirmed + BOUND - 0.5
        assert await status(client, SESSION) == 200  # within the bound
        clock.now = confirmed + BOUND + 0.5
        assert await status(client, SESSION) == 503
        assert (await client.get("/api/me", headers=SESSION)).json() == {"error": "gateway_stale"}
        assert await status(client) == 200  # no session, nothing to vouch for
        st = gateway.status()
        assert st["ready"] is False and st["state"] == "stale"
        assert st["staleness_seconds"] > BOUND and st["max_staleness_seconds"] == BOUND
        # refusals counted by reason: the one while starting, the two stale ones
        assert st["requests_refused"] == {
            "revoked": 0,
            "tenant_unknown": 0,
            "not_ready": 1,
            "stale": 2,
            "cookie_too_large": 0,
            "too_many_credentials": 0,
            "malformed_credential": 0,
        }

        await caught_up(consumer, ends)  # the broker answers again
        assert gateway.ready and await status(client, SESSION) == 200


async def test_answers_that_report_records_not_yet_read_do_not_confirm() -> None:
    clock = Clock()
    ends = {P0: 2, P1: 2}
    async with following(clock, ends) as (gateway, consumer, client):
        await consumer.step(Step(records={P0: 2, P1: 2}, answered=(P0, P1), highwater=ends))
        assert gateway.ready
        # fresh answers keep coming, but P1 has 5 records the follower does not get to
        lagging = {P0: 2, P1: 7}
        for _ in range(4):
            clock.now += BOUND / 3
            await consumer.step(Step(answered=(P0, P1), highwater=lagging))
        assert gateway.state == "stale"
        assert await status(client, SESSION) == 503
        await consumer.step(Step(records={P1: 5}, answered=(P1,), highwater=lagging))
        assert gateway.state == "current"
        assert await status(client, SESSION) == 200


async def test_one_silent_partition_is_enough_to_go_stale() -> None:
    clock = Clock()
    ends = {P0: 0, P1: 0}
    async with following(clock, ends) as (gateway, consumer, client):
        await caught_up(consumer, ends)
        assert gateway.ready
        for _ in range(4):  # P1's leader is gone: only P0 is answered
            clock.now += BOUND / 3
            await consumer.step(Step(answered=(P0,), highwater=ends))
        assert gateway.state == "stale"
        assert await status(client, SESSION) == 503


async def test_a_follower_that_stopped_goes_stale_on_its_own() -> None:
    clock = Clock()
    ends = {P0: 0, P1: 0}
    async with following(clock, ends) as (gateway, consumer, client):
        await caught_up(consumer, ends)
        assert await status(client, SESSION) == 200
        # nothing calls getmany any more (a stuck or crashed follower): time alone decides
        clock.now += BOUND + 0.001
        assert await status(client, SESSION) == 503
        assert gateway.state == "stale"


async def test_start_up_catch_up_slower_than_the_bound_waits_for_a_confirming_fetch() -> None:
    clock = Clock()
    ends = {P0: 4, P1: 0}
    async with following(clock, ends) as (gateway, consumer, client):
        clock.now += BOUND + 5  # reading the topic at start-up took longer than the bound
        await consumer.step(Step(records={P0: 4}))
        assert gateway.watcher.ready and gateway.state == "stale"
        assert await status(client, SESSION) == 503
        await caught_up(consumer, ends)
        assert gateway.state == "current" and await status(client, SESSION) == 200


async def test_a_transaction_left_open_confirms_nothing_until_it_ends(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """read_committed reads no further than a transaction still open, and the last stable
    offset stops there too: only the high watermark may confirm (before 2026-12-06 the last
    stable offset did, and the view stayed current blind to every record behind it)."""
    clock = Clock()
    ends = {P0: 1, P1: 0}
    async with following(clock, ends) as (gateway, consumer, client):
        await consumer.step(Step(records={P0: 1}, answered=(P0, P1), highwater=ends))
        assert gateway.state == "current"
        # a transaction opened at offset 1 and left open; a revocation written behind it at 2
        held = {P0: 3, P1: 0}
        with caplog.at_level(logging.WARNING, logger="auth_gateway.follower"):
            for _ in range(4):
                clock.now += BOUND / 3
                await consumer.step(Step(answered=(P0, P1), highwater=held, stable={P0: 1}))
        assert gateway.state == "stale"
        assert await status(client, SESSION) == 503
        warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1 and "transaction open at offset 1 " in warnings[0]
        # aborted: its record (1) and its marker (3) stepped over, the revocation (2) read
        ended = {P0: 4, P1: 0}
        await consumer.step(
            Step(records={P0: 1}, skipped={P0: 2}, answered=(P0, P1), highwater=ended, stable=ended)
        )
        assert gateway.state == "current"
        assert await status(client, SESSION) == 200


async def test_a_transaction_open_at_start_up_leaves_the_view_ready_but_not_current() -> None:
    """The start-up end offsets are last stable offsets under read_committed: reaching them
    makes the view ready (its start-up read done) but confirms nothing; it was current."""
    clock = Clock()
    ends = {P0: 1, P1: 0}  # `end_offsets`: the transaction opened at offset 1
    async with following(clock, ends) as (gateway, consumer, client):
        held = {P0: 3, P1: 0}
        await consumer.step(
            Step(records={P0: 1}, answered=(P0, P1), highwater=held, stable={P0: 1})
        )
        assert gateway.watcher.ready and gateway.state == "stale"
        assert await status(client, SESSION) == 503
        await consumer.step(
            Step(records={P0: 1}, skipped={P0: 1}, answered=(P0,), highwater={P0: 3})
        )
        assert gateway.state == "current"


async def test_fail_open_admits_while_stale_with_a_rate_limited_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = Clock()
    ends = {P0: 0, P1: 0}
    async with following(clock, ends, gateway_fail_open=True) as (gateway, consumer, client):
        await caught_up(consumer, ends)
        gateway.table.add(record_key("acme", session_handle("acme", "revoked-1")), 4_000_000_000)
        clock.now += BOUND + 1
        with caplog.at_level(logging.WARNING, logger="auth_gateway.middleware"):
            admitted = [await status(client, SESSION) for _ in range(3)]
            known = await status(client, {"x-session-id": "revoked-1"})
        assert admitted == [200] * 3
        assert known == 401  # what it has read is still enforced
        assert gateway.status()["state"] == "stale"
        warnings = [r.getMessage() for r in caplog.records if "FAIL-OPEN" in r.getMessage()]
        assert len(warnings) == 1 and "stale" in warnings[0]
        # and in the metrics, not the log alone, while GatewayStale says sessions are refused
        # (a review, stop 72): the three sessions it could not vouch for
        figures = {
            sample.name: sample.value
            for family in GatewayCollector(gateway).collect()
            for sample in family.samples
        }
        assert figures["session_gateway_fail_open"] == 1
        assert figures["session_gateway_admitted_unverified_total"] == 3


async def test_wait_ready_returns_once_current() -> None:
    clock = Clock()
    ends = {P0: 1, P1: 0}
    async with following(clock, ends) as (gateway, consumer, _):
        waiting = asyncio.create_task(gateway.wait_ready())
        await consumer.step(Step(records={P0: 1}, answered=(P0, P1), highwater=ends))
        async with asyncio.timeout(10):
            await waiting
        assert gateway.ready


@pytest.mark.parametrize("seconds", [0, 0.1, -1, 3601, float("nan")])
def test_a_partitions_check_out_of_its_bounds_is_refused_naming_it(seconds: float) -> None:
    """0 would have the consumer refresh metadata on every fetch (a request per round, a
    broker hammered by every gateway); a day would leave new partitions unread that long."""
    with pytest.raises(ValidationError, match="gateway_partitions_check_seconds"):
        GatewaySettings(gateway_partitions_check_seconds=seconds)
