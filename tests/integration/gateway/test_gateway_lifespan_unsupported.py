"""An app that does not speak ASGI lifespan, wrapped by the gateway and served by uvicorn as a
platform team would run it (`--lifespan auto`, the default), with the real broker.

Before stop 66 the gateway started only when the app read `lifespan.startup`. Django's
`ASGIHandler`, and many hand-written apps, raise for any scope but HTTP: uvicorn then logged
"ASGI 'lifespan' protocol appears unsupported." at info level and served on, the gateway never
started, and every request with a session was answered 503 `gateway_not_ready` for good (or,
with fail-open set to get past that, admitted against an empty table). Found by a review as an
attacker.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from starlette.types import Receive, Scope, Send

from auth_gateway import SessionGateway
from polling import until
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

LIVE, STOLEN = "a-live-credential-of-a-plain-app", "a-stolen-credential-of-a-plain-app"


async def http_only_app(scope: Scope, receive: Receive, send: Send) -> None:
    """As Django's ASGIHandler: HTTP only, anything else refused with an exception."""
    if scope["type"] != "http":
        raise ValueError(f"Django can only handle ASGI/HTTP connections, not {scope['type']}.")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def test_an_app_without_lifespan_is_guarded_under_uvicorns_default(
    kafka_bootstrap: str,
    topics: Topics,
    serve: object,
    revoke: object,
    broker_gateway: Callable[..., SessionGateway],
) -> None:
    gateway = broker_gateway()
    app = gateway.wrap(http_only_app)
    async with serve(app, lifespan="auto") as url, httpx.AsyncClient(timeout=10) as client:  # type: ignore[operator]
        async with asyncio.timeout(30):
            await gateway.wait_ready()  # started: before, it never was
        await revoke(STOLEN)  # type: ignore[operator]

        async def refused() -> bool:
            answer = await client.get(f"{url}/reports", headers={"x-session-id": STOLEN})
            return answer.status_code == 401

        await until(refused, 20, "the revoked session refused")
        live = await client.get(f"{url}/reports", headers={"x-session-id": LIVE})
        assert live.status_code == 200 and live.text == "ok"
