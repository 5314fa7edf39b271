"""A broker outage: the gateway keeps enforcing, reports staleness, and catches up afterwards.

Runs its OWN single-node broker (deploy/kafka.sh on free ports, state in a temporary
directory) so stopping it disturbs nobody else's tests.
"""

from __future__ import annotations

import asyncio
import os
import re
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway
from session_contracts.codec import encode
from session_contracts.kafka_admin import ensure_topics
from session_contracts.models import SessionRevoked, SessionType, TerminationReason
from session_contracts.publisher import idempotent_producer
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[3]
Eventually = Callable[..., Awaitable[float]]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class OwnBroker:
    """A private broker: `await start()`, `await stop()`, same ports and data across restarts."""

    def __init__(self, state_dir: Path) -> None:
        port = _free_port()
        self.env = {
            **os.environ,
            "KAFKA_PORT": str(port),
            "KAFKA_CONTROLLER_PORT": str(_free_port()),
            "SESSIONS_STATE_DIR": str(state_dir),
            "KAFKA_HEAP": "512m",
        }
        self.bootstrap = f"127.0.0.1:{port}"

    async def _run(self, command: str) -> str:
        process = await asyncio.create_subprocess_exec(
            "bash",
            str(ROOT / "deploy" / "kafka.sh"),
            command,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        if process.returncode != 0:
            raise RuntimeError(f"kafka.sh {command} failed: {out.decode()} {err.decode()}")
        return out.decode()

    async def start(self) -> None:
        printed = await self._run("start")
        assert re.search(rf"^KAFKA_BOOTSTRAP_SERVERS={self.bootstrap}$", printed, re.MULTILINE)

    async def stop(self) -> None:
        await self._run("stop")


@pytest.fixture
async def own_broker(tmp_path: Path) -> AsyncIterator[OwnBroker]:
    broker = OwnBroker(tmp_path / "state")
    await broker.start()
    try:
        yield broker
    finally:
        await broker.stop()


def record(session_id: str) -> bytes:
    now = datetime.now(UTC)
    return encode(
        SessionRevoked(
            tenant_id="acme",
            session_id=session_id,
            session_type=SessionType.mobile,
            revoked_at=now,
            reason=TerminationReason.admin,
            valid_until=now + timedelta(hours=1),
        )
    )


async def test_outage_keeps_enforcing_then_catches_up_with_revocations_made_meanwhile(
    own_broker: OwnBroker, eventually: Eventually
) -> None:
    topics = Topics(prefix="outage.", partitions=2)
    await ensure_topics(own_broker.bootstrap, topics)
    producer = idempotent_producer(own_broker.bootstrap, linger_ms=0, request_timeout_ms=120_000)
    await producer.start()
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            KAFKA_BOOTSTRAP_SERVERS=own_broker.bootstrap,
            topic_prefix=topics.prefix,
            topic_partitions=topics.partitions,
            gateway_tenant_id="acme",
        )
    )
    app = gateway.wrap(
        Starlette(routes=[Route("/api/data", lambda request: PlainTextResponse("data"))]),
        manage_lifespan=False,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")

    async def status_of(session_id: str) -> int:
        response = await client.get("/api/data", headers={"X-Session-Id": session_id})
        return response.status_code

    try:
        await producer.send_and_wait(topics.revocations, record("before"), key=b"before")
        await gateway.start()
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        assert await status_of("before") == 401
        assert await status_of("meanwhile") == 200

        await own_broker.stop()
        await asyncio.sleep(3)
        assert gateway.staleness_seconds > 2
        assert await status_of("before") == 401  # what it knows is still enforced
        assert gateway.ready
        # The registry keeps revoking during the outage; its records wait in the producer.
        pending = await producer.send(topics.revocations, record("meanwhile"), key=b"meanwhile")

        await own_broker.start()
        async with asyncio.timeout(60):
            await pending

        async def enforced(session_id: str) -> bool:
            return await status_of(session_id) == 401

        async def current() -> bool:
            return gateway.staleness_seconds < 1

        await eventually(lambda: enforced("meanwhile"), within=30)
        await eventually(current, within=10)
        await producer.send_and_wait(topics.revocations, record("after"), key=b"after")
        await eventually(lambda: enforced("after"), within=10)
        assert await status_of("before") == 401
        assert await status_of("unrelated") == 200
    finally:
        await client.aclose()
        await gateway.stop()
        await producer.stop()
