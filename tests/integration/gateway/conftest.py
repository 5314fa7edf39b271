"""Helpers for gateway tests on a real broker: revocation records, reading topics back, servers."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Literal

import pytest
import uvicorn
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from starlette.types import ASGIApp

from auth_gateway import GatewaySettings, SessionGateway
from fresh_topics import connection, read_records
from polling import until
from revocation_records import revocation
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_clients import new_producer
from session_contracts.topics import Topics

TENANT = "acme"

Revoke = Callable[..., Awaitable[None]]


@pytest.fixture
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """An idempotent producer on the shared test broker."""
    started = new_producer(connection(kafka_bootstrap), linger_ms=0)
    await started.start()
    try:
        yield started
    finally:
        await started.stop()


@pytest.fixture
def revoke(producer: AIOKafkaProducer, topics: Topics) -> Revoke:
    """Publish a revocation record (or, with `tombstone=True`, a tombstone) for the session
    whose credential is given, keyed `<tenant>/<handle>` as the registry keys it."""

    async def publish(credential: str, *, tombstone: bool = False, **fields: object) -> None:
        tenant = str(fields.get("tenant_id", TENANT))
        value = None if tombstone else encode(revocation(credential, **fields))  # type: ignore[arg-type]
        key = record_key(tenant, session_handle(tenant, credential))
        await producer.send_and_wait(topics.revocations, value, key=key)

    return publish


ReadTopic = Callable[..., Awaitable[list[tuple[bytes | None, bytes | None]]]]
Eventually = Callable[..., Awaitable[float]]
Serve = Callable[..., contextlib.AbstractAsyncContextManager[str]]


@pytest.fixture
def read_topic(kafka_bootstrap: str) -> ReadTopic:
    """`await read_topic(topic, count)`: the first `count` records (key, value) of a topic;
    `await read_topic(topic)`: every record it holds now (up to its end offsets).

    `bootstrap=` reads from another broker (a test's private one) instead of the shared one;
    `within=` bounds the wait for records that may not come. Activity may be delivered twice
    (docs/gateway.md), so a test looking for one record among events sent around a broker
    outage reads them all: the first `count` can be duplicates of others.
    """

    async def read(
        topic: str, count: int | None = None, bootstrap: str | None = None, within: float = 20.0
    ) -> list[tuple[bytes | None, bytes | None]]:
        address = bootstrap or kafka_bootstrap
        if count is None:
            return [(record.key, record.value) for record in await read_records(address, topic)]
        return await _read_topic(address, topic, count, within)

    return read


@pytest.fixture
def eventually() -> Eventually:
    """`await eventually(check, within=10)`: poll an async check; the seconds it took."""
    return functools.partial(until, within=10.0, interval=0.01)


BrokerGateway = Callable[..., SessionGateway]


@pytest.fixture
def broker_gateway(kafka_bootstrap: str, topics: Topics) -> BrokerGateway:
    """`broker_gateway(**settings)`: a gateway of tenant `acme` following the test's topics on
    the shared broker (`bootstrap=`: another broker), with any other settings given."""

    def make(bootstrap: str = kafka_bootstrap, **settings: Any) -> SessionGateway:
        return SessionGateway.from_settings(
            GatewaySettings(
                KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                topic_prefix=topics.prefix,
                topic_partitions=topics.partitions,
                gateway_tenant_id="acme",
                **settings,
            )
        )

    return make


@pytest.fixture
def serve() -> Serve:
    """`async with serve(app) as url`: the app under uvicorn on a free loopback port
    (`lifespan=`: uvicorn's lifespan mode, "on" unless given)."""
    return _serve


async def _read_topic(
    bootstrap: str, topic: str, count: int, within: float = 20.0
) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    records: list[tuple[bytes | None, bytes | None]] = []
    try:
        deadline = time.monotonic() + within
        while len(records) < count and time.monotonic() < deadline:
            batches = await consumer.getmany(timeout_ms=200)
            records.extend((r.key, r.value) for batch in batches.values() for r in batch)
    finally:
        await consumer.stop()
    return records


@contextlib.asynccontextmanager
async def _serve(app: ASGIApp, lifespan: Literal["auto", "on", "off"] = "on") -> AsyncIterator[str]:
    # the socket bound here and handed to uvicorn: no port can be taken in between
    listening = socket.socket()
    listening.bind(("127.0.0.1", 0))
    port = listening.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            log_level="warning",
            lifespan=lifespan,  # "auto", uvicorn's default: an app may not speak it
            proxy_headers=False,  # the peer as it is (docs/gateway.md: --no-proxy-headers)
        )
    )
    task = asyncio.create_task(server.serve(sockets=[listening]))
    try:
        while not server.started:
            if task.done():
                task.result()
                raise RuntimeError("uvicorn exited during start-up")
            await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        listening.close()
