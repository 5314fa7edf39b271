"""A request whose body is held back until after its session's revocation does nothing (uvicorn
over loopback, a real broker, a client on a raw socket).

The attack (a review, stop 66): with a stolen session, send the headers of a request that
changes something, hold the body back, and send it once the session is revoked. The gateway
checked the request when its headers arrived; the app read the body and did what it asked, and
only its answer was refused. uvicorn starts the app once the headers are complete and does not
time out a body being read, so such requests could be kept open for hours.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auth_gateway import SessionGateway, connections
from polling import until
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

STOLEN = "stolen-credential-with-a-held-body"


async def make_token(request: Request) -> PlainTextResponse:
    body = await request.body()
    request.app.state.done.append(body)
    return PlainTextResponse("token made")


async def test_a_body_held_back_until_after_the_revocation_is_refused_and_does_nothing(
    kafka_bootstrap: str,
    topics: Topics,
    serve: object,
    revoke: object,
    monkeypatch: pytest.MonkeyPatch,
    broker_gateway: Callable[..., SessionGateway],
) -> None:
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.2)  # the bound, shortened
    gateway = broker_gateway()
    app = Starlette(routes=[Route("/tokens", make_token, methods=["POST"])])
    app.state.done = []
    gateway.install(app)
    async with serve(app) as url:  # type: ignore[operator]
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        host, port = url.removeprefix("http://").rstrip("/").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        body = b"scope=admin"
        writer.write(
            b"POST /tokens HTTP/1.1\r\nhost: app\r\n"
            + f"x-session-id: {STOLEN}\r\n".encode()
            + f"content-length: {len(body)}\r\n\r\n".encode()
        )
        await writer.drain()
        await asyncio.sleep(0.5)  # the headers checked, the app waiting for the body

        await revoke(STOLEN)  # type: ignore[operator]

        async def applied() -> bool:
            return gateway.is_revoked(STOLEN)

        await until(applied, 20, "the gateway applied the revocation")
        await asyncio.sleep(0.3)  # past the bound since the check, whatever the wait took
        writer.write(body)
        await writer.drain()
        async with asyncio.timeout(10):
            status_line = await reader.readline()
        writer.close()
        assert status_line.startswith(b"HTTP/1.1 401"), status_line
        assert app.state.done == []  # the token was never made
