"""A feed streamed to a client ends when its session is revoked on the broker (uvicorn over
loopback, a real broker, httpx as the client). Before 2026-12-06 a feed opened before the
revocation went on being served for as long as the client kept it open."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import StreamingResponse
from starlette.routing import Route

from auth_gateway import SessionGateway
from polling import until
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

Revoke = Callable[..., Awaitable[None]]
Serve = Callable[..., object]
STOLEN, OTHER = "stolen-credential-of-a-feed", "another-credential-of-a-feed"


async def feed(request: Request) -> StreamingResponse:
    """One event, then nothing until the client leaves (a quiet server-sent events feed)."""
    request.state.session_authenticated = True

    async def events() -> AsyncIterator[str]:
        try:
            yield f"data: for {request.state.session_credential}\n\n"
            await asyncio.Event().wait()
        finally:
            request.app.state.stopped.append(request.state.session_credential)

    return StreamingResponse(events(), media_type="text/event-stream")


async def test_an_open_feed_ends_when_its_session_is_revoked(
    kafka_bootstrap: str,
    topics: Topics,
    serve: Serve,
    revoke: Revoke,
    broker_gateway: Callable[..., SessionGateway],
) -> None:
    gateway = broker_gateway()
    app = Starlette(routes=[Route("/events", feed)])
    app.state.stopped = []
    gateway.install(app)
    async with serve(app) as url, httpx.AsyncClient(timeout=10) as client:  # type: ignore[attr-defined]
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        stolen_headers = {"x-session-id": STOLEN, "accept": "text/event-stream"}
        other_headers = {"x-session-id": OTHER, "accept": "text/event-stream"}
        async with (
            client.stream("GET", f"{url}/events", headers=stolen_headers) as stolen,
            client.stream("GET", f"{url}/events", headers=other_headers) as other,
        ):
            assert (stolen.status_code, other.status_code) == (200, 200)
            stolen_lines, other_lines = stolen.aiter_lines(), other.aiter_lines()
            assert await anext(stolen_lines) == f"data: for {STOLEN}"
            assert await anext(other_lines) == f"data: for {OTHER}"
            assert await anext(other_lines) == ""  # the event's end
            await revoke(STOLEN)
            async with asyncio.timeout(10):  # the stream ends: nothing more was served
                rest = [line async for line in stolen_lines]
            assert [line for line in rest if line] == []
            # the client reconnects (an EventSource does by itself): refused
            again = await client.get(f"{url}/events", headers=stolen_headers)
            assert again.status_code == 401
            # another session's feed is still open
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(0.3):
                    await anext(other_lines)

        async def stopped() -> bool:  # the app's feed was stopped, not left running
            return STOLEN in app.state.stopped

        await until(stopped, 10, "the revoked feed stopped")
