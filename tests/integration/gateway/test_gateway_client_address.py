"""The address in activity events is the connection's peer unless that peer is a trusted proxy.

Served by uvicorn over loopback with proxy headers off (`--no-proxy-headers`, as
docs/gateway.md asks of the host), so the ASGI scope holds the real peer. Two peers: a client
connecting from 127.0.0.1 (not trusted) and a "proxy" connecting from 127.0.0.2 (trusted).
The events are read back from the real broker.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auth_gateway import SessionGateway
from polling import until
from session_contracts.handles import record_key, session_handle
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

ReadTopic = Callable[..., Awaitable[list[tuple[bytes | None, bytes | None]]]]
Serve = Callable[..., object]


async def ok(request: Request) -> PlainTextResponse:
    request.state.session_authenticated = True  # the app knows these sessions
    return PlainTextResponse("ok")


async def test_activity_reports_the_peer_unless_it_is_a_trusted_proxy(
    kafka_bootstrap: str,
    topics: Topics,
    serve: Serve,
    read_topic: ReadTopic,
    broker_gateway: Callable[..., SessionGateway],
) -> None:
    gateway = broker_gateway(
        gateway_trusted_proxies=["127.0.0.2"], gateway_activity_flush_seconds=0.1
    )
    app = Starlette(routes=[Route("/api/data", ok)])
    gateway.install(app)
    direct = httpx.AsyncClient()  # connects from 127.0.0.1
    proxy = httpx.AsyncClient(transport=httpx.AsyncHTTPTransport(local_address="127.0.0.2"))
    sent = [
        (direct, "direct-1", "6.6.6.6", "127.0.0.1"),  # untrusted peer: its header is ignored
        (proxy, "proxied-1", "203.0.113.7", "203.0.113.7"),  # trusted proxy: what it appended
        (proxy, "spoofed-1", "6.6.6.6, 203.0.113.8", "203.0.113.8"),  # the client's lie skipped
    ]
    try:
        async with serve(app) as url:  # type: ignore[attr-defined]
            async with asyncio.timeout(30):
                await gateway.wait_ready()
            for client, session_id, forwarded, _ in sent:
                response = await client.get(
                    f"{url}/api/data",
                    headers={"x-session-id": session_id, "x-forwarded-for": forwarded},
                )
                assert response.status_code == 200
            reported: dict[str, str | None] = {}

            async def all_reported() -> bool:
                for key, value in await read_topic(topics.events, len(sent), within=2):
                    assert key is not None and value is not None
                    reported[key.decode()] = json.loads(value).get("ip_address")
                return len(reported) == len(sent)

            await until(all_reported, 30, "three activity events")
    finally:
        await direct.aclose()
        await proxy.aclose()
    assert reported == {
        record_key("acme", session_handle("acme", credential)).decode(): ip
        for _, credential, _, ip in sent
    }
