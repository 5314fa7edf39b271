"""A broker outage: the gateway keeps enforcing, reports staleness, and catches up afterwards;
activity noted during the outage is delivered once the broker is back. Past its staleness
bound it stops vouching for sessions (503, not ready) until it is current again.

Runs on the test's OWN broker (`private_kafka`: deploy/kafka.sh on free ports, state in a
temporary directory) so stopping it disturbs nobody else's tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway, follower
from fresh_topics import connection
from private_services import PrivateKafka
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_producer
from session_contracts.models import SessionRevoked, SessionType, TerminationReason
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.slow]

Eventually = Callable[..., Awaitable[float]]
ReadTopic = Callable[..., Awaitable[list[tuple[bytes | None, bytes | None]]]]


def key(credential: str) -> bytes:
    """The revocations topic's key of the acme session whose credential this is."""
    return record_key("acme", session_handle("acme", credential))


async def authenticated(request: Request) -> PlainTextResponse:
    request.state.session_authenticated = True  # the app knows every session in these tests
    return PlainTextResponse("data")


def record(credential: str) -> bytes:
    now = datetime.now(UTC)
    return encode(
        SessionRevoked(
            tenant_id="acme",
            session_id=session_handle("acme", credential),
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
    await ensure_topics(connection(private_kafka.bootstrap, topics))
    producer = new_producer(
        connection(private_kafka.bootstrap), linger_ms=0, request_timeout_ms=120_000
    )
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
        Starlette(routes=[Route("/api/data", authenticated)]),
        manage_lifespan=False,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")

    async def status_of(session_id: str) -> int:
        response = await client.get("/api/data", headers={"X-Session-Id": session_id})
        return response.status_code

    try:
        await producer.send_and_wait(topics.revocations, record("before"), key=key("before"))
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
        pending = await producer.send(topics.revocations, record("meanwhile"), key=key("meanwhile"))

        await private_kafka.start()
        async with asyncio.timeout(60):
            await pending

        async def enforced(session_id: str) -> bool:
            return await status_of(session_id) == 401

        async def current() -> bool:
            return gateway.staleness_seconds < 1

        await eventually(lambda: enforced("meanwhile"), within=30)
        await eventually(current, within=10)
        await producer.send_and_wait(topics.revocations, record("after"), key=key("after"))
        await eventually(lambda: enforced("after"), within=10)
        assert await status_of("before") == 401
        assert await status_of("unrelated") == 200

        # Activity noted while the broker was away arrives once it is back. Every record is
        # read, not the first three: `meanwhile`, `after` (admitted until its revocation came)
        # and `unrelated` all go to partition 0, and `meanwhile`'s activity, in flight when the
        # broker stopped, may be there twice (at least once). Three records of partition 0
        # then filled the read before partition 1, which holds `busy-in-outage`, was fetched.
        async def activity_of(session_id: str) -> bool:
            records = await read_topic(topics.events, bootstrap=private_kafka.bootstrap)
            return any(k == key(session_id) for k, _ in records)

        await eventually(lambda: activity_of("busy-in-outage"), within=60)
    finally:
        await client.aclose()
        await gateway.stop()
        await producer.stop()


async def test_cut_off_from_the_broker_the_gateway_goes_stale_refuses_sessions_then_recovers(
    private_kafka: PrivateKafka, eventually: Eventually, monkeypatch: pytest.MonkeyPatch
) -> None:
    bound = 3.0
    # a consumer whose fetches go unanswered is built again (its credentials read again: a
    # rotated password or certificate left the view stale for good, a review, stop 70)
    monkeypatch.setattr(follower, "UNANSWERED_SECONDS", 2.0)
    builds: list[object] = []
    build = follower.new_consumer  # type: ignore[attr-defined]

    def counted(*args: Any, **kwargs: Any) -> Any:
        builds.append(None)
        return build(*args, **kwargs)

    monkeypatch.setattr(follower, "new_consumer", counted)
    topics = Topics(prefix="stale.", partitions=2)
    await ensure_topics(connection(private_kafka.bootstrap, topics))
    producer = new_producer(
        connection(private_kafka.bootstrap), linger_ms=0, request_timeout_ms=120_000
    )
    await producer.start()
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            KAFKA_BOOTSTRAP_SERVERS=private_kafka.bootstrap,
            topic_prefix=topics.prefix,
            topic_partitions=topics.partitions,
            gateway_tenant_id="acme",
            gateway_max_staleness_seconds=bound,
        )
    )

    async def readyz(request: Request) -> JSONResponse:
        status = gateway.status()
        return JSONResponse(status, status_code=200 if status["ready"] else 503)

    app = gateway.wrap(
        Starlette(
            routes=[
                Route("/readyz", readyz),
                Route("/api/data", lambda request: PlainTextResponse("data")),
            ]
        ),
        manage_lifespan=False,
    )
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://svc")

    async def status_of(session_id: str | None) -> int:
        headers = {"X-Session-Id": session_id} if session_id else {}
        return (await client.get("/api/data", headers=headers)).status_code

    try:
        await producer.send_and_wait(topics.revocations, record("before"), key=key("before"))
        await gateway.start()
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        assert await status_of("live") == 200
        assert await status_of("before") == 401
        assert (await client.get("/readyz")).status_code == 200

        await private_kafka.stop()

        async def refused() -> bool:
            return await status_of("live") == 503

        await eventually(refused, within=60)
        # refused only once the bound had passed without the gateway confirming it is current
        assert gateway.staleness_seconds > bound
        readyz_answer = await client.get("/readyz")
        assert readyz_answer.status_code == 503
        assert readyz_answer.json()["state"] == "stale"
        assert readyz_answer.json()["staleness_seconds"] > bound
        answer = await client.get("/api/data", headers={"X-Session-Id": "live"})
        assert answer.json() == {"error": "gateway_stale"}
        assert answer.headers["retry-after"] == "1"
        assert await status_of("before") == 401  # what it has read is still refused as such
        assert await status_of(None) == 200  # no session: nothing to vouch for
        built = len(builds)

        async def built_again() -> bool:
            return len(builds) > built

        await eventually(built_again, within=30)

        await private_kafka.start()

        async def admitted() -> bool:
            return await status_of("live") == 200

        await eventually(admitted, within=90)
        assert (await client.get("/readyz")).status_code == 200
        assert gateway.status()["state"] == "current"
        await producer.send_and_wait(topics.revocations, record("after"), key=key("after"))

        async def enforced() -> bool:
            return await status_of("after") == 401

        await eventually(enforced, within=30)
    finally:
        await client.aclose()
        await gateway.stop()
        await producer.stop()
