"""A broker outage: the gateway keeps enforcing, reports staleness, and catches up afterwards;
activity noted during the outage is delivered once the broker is back.

Runs on the test's OWN broker (`private_kafka`: deploy/kafka.sh on free ports, state in a
temporary directory) so stopping it disturbs nobody else's tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway
from private_services import PrivateKafka  # type: ignore[import-not-found]  # tests/ dir
from session_contracts.codec import encode
from session_contracts.kafka_admin import ensure_topics
from session_contracts.models import SessionRevoked, SessionType, TerminationReason
from session_contracts.publisher import idempotent_producer
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

Eventually = Callable[..., Awaitable[float]]
ReadTopic = Callable[..., Awaitable[list[tuple[bytes | None, bytes | None]]]]


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
    private_kafka: PrivateKafka, eventually: Eventually, read_topic: ReadTopic
) -> None:
    topics = Topics(prefix="outage.", partitions=2)
    await ensure_topics(private_kafka.bootstrap, topics)
    producer = idempotent_producer(private_kafka.bootstrap, linger_ms=0, request_timeout_ms=120_000)
    await producer.start()
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            KAFKA_BOOTSTRAP_SERVERS=private_kafka.bootstrap,
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

        await private_kafka.stop()
        await asyncio.sleep(3)
        assert gateway.staleness_seconds > 2
        assert await status_of("before") == 401  # what it knows is still enforced
        assert gateway.ready
        assert await status_of("busy-in-outage") == 200  # admitted; its activity must wait
        # The registry keeps revoking during the outage; its records wait in the producer.
        pending = await producer.send(topics.revocations, record("meanwhile"), key=b"meanwhile")

        await private_kafka.start()
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

        # activity noted while the broker was away arrives once it is back
        async def activity_of(session_id: str) -> bool:
            records = await read_topic(
                topics.events, 3, bootstrap=private_kafka.bootstrap, within=3
            )
            return any(key == session_id.encode() for key, _ in records)

        await eventually(lambda: activity_of("busy-in-outage"), within=60)
    finally:
        await client.aclose()
        await gateway.stop()
        await producer.stop()
