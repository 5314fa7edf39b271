"""A transaction left open on the revocations topic, on the real broker (review of 2026-12-06).

The gateway reads `read_committed`, so it cannot read past a transaction that is still open,
and every revocation written after it waits behind it (up to the broker's
`transaction.max.timeout.ms`, 15 minutes). It confirmed it was current against the last stable
offset, which stops at that transaction too: blind, it kept saying current. It must go stale
(fail closed) and be current again, with the hidden revocation enforced, once the transaction
is aborted or committed.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable
from datetime import timedelta

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_gateway import SessionGateway
from revocation_records import revocation
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

Eventually = Callable[..., Awaitable[float]]
BOUND = 2.0
"""The staleness bound of these gateways (seconds): short, so the test does not wait 15 s."""


def _revocation(credential: str) -> tuple[bytes, bytes]:
    """The key and value the registry writes for the session of `credential` in acme."""
    value = revocation(credential, valid_for=timedelta(hours=1))
    return record_key("acme", value.session_id), encode(value)


def _gateway(
    broker_gateway: Callable[..., SessionGateway],
) -> tuple[SessionGateway, httpx.AsyncClient]:
    """A gateway with the short bound, and a client of an app behind it."""
    gateway = broker_gateway(gateway_max_staleness_seconds=BOUND)
    app = Starlette(routes=[Route("/api/me", _whoami)])
    client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=gateway.wrap(app, manage_lifespan=False)),
        base_url="http://svc",
    )
    return gateway, client


def _transactional(kafka_bootstrap: str, topics: Topics) -> AIOKafkaProducer:
    """A producer allowed on the topic that opens a transaction (and, here, leaves it open)."""
    return AIOKafkaProducer(
        bootstrap_servers=kafka_bootstrap,
        transactional_id=f"{topics.prefix}{uuid.uuid4().hex}",
        transaction_timeout_ms=120_000,
    )


async def _whoami(request: Request) -> JSONResponse:
    return JSONResponse({"session": getattr(request.state, "session_credential", None)})


async def _status(client: httpx.AsyncClient, credential: str) -> tuple[int, object]:
    response = await client.get("/api/me", headers={"x-session-id": credential})
    return response.status_code, response.json()


@pytest.mark.parametrize("ending", ["abort", "commit"])
async def test_a_transaction_left_open_makes_the_gateway_stale_until_it_ends(
    kafka_bootstrap: str,
    topics: Topics,
    producer: AIOKafkaProducer,
    eventually: Eventually,
    caplog: pytest.LogCaptureFixture,
    ending: str,
    broker_gateway: Callable[..., SessionGateway],
) -> None:
    gateway, client = _gateway(broker_gateway)
    hostile = _transactional(kafka_bootstrap, topics)

    async def stale() -> bool:
        return gateway.state == "stale"

    async def current_and_enforced() -> bool:
        return gateway.state == "current" and gateway.is_revoked("after-it")

    await gateway.start()
    await hostile.start()
    try:
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        assert await _status(client, "after-it") == (200, {"session": "after-it"})

        # Both on one partition: the registry's revocation lands behind the open transaction.
        await hostile.begin_transaction()
        key, value = _revocation("in-the-transaction")
        await hostile.send_and_wait(topics.revocations, value, key=key, partition=0)
        key, value = _revocation("after-it")
        written = await producer.send_and_wait(topics.revocations, value, key=key, partition=0)
        with caplog.at_level(logging.WARNING, logger="auth_gateway.follower"):
            # the code before said current for as long as the transaction stayed open
            await eventually(stale, within=BOUND + 10, what="stale behind the open transaction")
            for _ in range(5):  # and stays so: nothing confirms it while the transaction is open
                assert not gateway.is_revoked("after-it")  # not read: it waits behind it
                assert await _status(client, "after-it") == (503, {"error": "gateway_stale"})
                assert gateway.status()["ready"] is False
                await asyncio.sleep(BOUND / 4)
        held = [r.getMessage() for r in caplog.records if "transaction open" in r.getMessage()]
        assert len(held) == 1 and f"offset {written.offset - 1} " in held[0], held

        if ending == "abort":
            await hostile.abort_transaction()
        else:
            await hostile.commit_transaction()
        await eventually(current_and_enforced, within=10, what=f"current after the {ending}")
        assert await _status(client, "after-it") == (401, {"error": "session_revoked"})
        # read_committed still: an aborted transaction's revocation is never applied
        assert gateway.is_revoked("in-the-transaction") == (ending == "commit")
        assert gateway.watcher.records_rejected == 0
    finally:
        await hostile.stop()
        await gateway.stop()
        await client.aclose()


async def test_a_gateway_starting_behind_an_open_transaction_is_not_current_until_it_ends(
    kafka_bootstrap: str,
    topics: Topics,
    producer: AIOKafkaProducer,
    eventually: Eventually,
    broker_gateway: Callable[..., SessionGateway],
) -> None:
    """Its start-up end offsets are last stable offsets (read_committed): reaching them is the
    start-up read, never a confirmation; the code before was current at once."""
    hostile = _transactional(kafka_bootstrap, topics)
    await hostile.start()
    gateway, client = _gateway(broker_gateway)
    try:
        await hostile.begin_transaction()
        key, value = _revocation("in-the-transaction")
        await hostile.send_and_wait(topics.revocations, value, key=key, partition=0)
        key, value = _revocation("after-it")
        await producer.send_and_wait(topics.revocations, value, key=key, partition=0)
        await gateway.start()

        async def read_to_the_transaction() -> bool:
            return gateway.watcher.ready

        await eventually(read_to_the_transaction, within=30, what="start-up read")
        for _ in range(3 * 4):  # three bounds: never current while the transaction is open
            assert gateway.state == "stale" and not gateway.is_revoked("after-it")
            assert await _status(client, "after-it") == (503, {"error": "gateway_stale"})
            await asyncio.sleep(BOUND / 4)

        await hostile.commit_transaction()
        async with asyncio.timeout(10):
            await gateway.wait_ready()
        assert gateway.is_revoked("after-it") and gateway.is_revoked("in-the-transaction")
        assert await _status(client, "after-it") == (401, {"error": "session_revoked"})
    finally:
        await hostile.stop()
        await gateway.stop()
        await client.aclose()
