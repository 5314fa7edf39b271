"""A session carried as `Authorization: Bearer <id>`, `?access_token=<id>` or a WebSocket's
subprotocol after `access_token` is refused once its revocation arrives through Kafka (uvicorn
over loopback, a real broker, a FastAPI app reading the session with `HTTPBearer` and
`Query()`, a WebSocket on a raw socket as a browser opens it).

Before stop 67 the gateway read none of them: each was served after the revocation."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
from collections.abc import Callable

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from auth_gateway import SessionGateway
from polling import until

pytestmark = pytest.mark.kafka

STOLEN = "stolen-credential-of-a-phone"
OTHER = "another-credential-of-a-phone"


def service() -> FastAPI:
    """A service whose mobile clients send a bearer token and whose sockets send a parameter."""
    app = FastAPI()

    @app.get("/api/me")
    async def me(
        bearer: HTTPAuthorizationCredentials | None = Depends(HTTPBearer(auto_error=False)),
        access_token: str | None = Query(default=None),
    ) -> dict[str, str | None]:
        return {"session": bearer.credentials if bearer else access_token}

    return app


async def test_bearer_and_query_sessions_are_refused_once_revoked_through_kafka(
    serve: object, revoke: object, broker_gateway: Callable[..., SessionGateway]
) -> None:
    gateway = broker_gateway(
        gateway_header_name="Authorization",
        gateway_header_scheme="Bearer",
        gateway_query_param="access_token",
    )
    app = service()
    gateway.install(app)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:  # type: ignore[operator]
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        bearer = {"authorization": f"Bearer {STOLEN}"}
        before = await client.get("/api/me", headers=bearer)
        assert before.status_code == 200 and before.json() == {"session": STOLEN}

        await revoke(STOLEN)  # type: ignore[operator]

        async def applied() -> bool:
            return gateway.is_revoked(STOLEN)

        await until(applied, 20, "the gateway applied the revocation")
        by_header = await client.get("/api/me", headers=bearer)
        by_query = await client.get("/api/me", params={"access_token": STOLEN})
        by_name_encoded = await client.get(f"/api/me?%61ccess_token={STOLEN}")
        page = await client.get("/api/me", headers={**bearer, "accept": "text/html"})
        spelled = await client.get("/api/me", headers={"authorization": f"Bearer:{STOLEN}"})
        other = await client.get("/api/me", headers={"authorization": f"bearer {OTHER}"})
    for refused in (by_header, by_query, by_name_encoded):
        assert refused.status_code == 401 and refused.json() == {"error": "session_revoked"}
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")
    assert spelled.status_code == 400 and spelled.json() == {"error": "malformed_credential"}
    assert other.status_code == 200 and other.json() == {"session": OTHER}


async def hello(websocket: WebSocket) -> None:
    await websocket.accept(subprotocol="access_token")  # the marker, never the id
    await websocket.send_text(f"hello {websocket.state.session_credential}")
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


Opened = tuple[bytes, asyncio.StreamReader, asyncio.StreamWriter]


async def handshake(url: str, *protocols: str) -> Opened:
    """A WebSocket opened as `new WebSocket(url, protocols)` opens it: the status line, and
    the connection (its writer kept: a writer collected closes it)."""
    host, port = url.removeprefix("http://").split(":")
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(
        b"GET /ws HTTP/1.1\r\nHost: app\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
        + b"Sec-WebSocket-Key: "
        + base64.b64encode(os.urandom(16))
        + b"\r\n"
        + b"Sec-WebSocket-Version: 13\r\n"
        + b"Sec-WebSocket-Protocol: "
        + ", ".join(protocols).encode()
        + b"\r\n\r\n"
    )
    await writer.drain()
    status = await reader.readline()
    while (await reader.readline()) not in (b"\r\n", b""):
        pass  # the rest of the head
    return status, reader, writer


async def frame(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """The next frame the server sends (unmasked, short): its opcode and payload."""
    first, second = await reader.readexactly(2)
    length = second & 0x7F
    if length == 126:
        length = int.from_bytes(await reader.readexactly(2))
    return first & 0x0F, await reader.readexactly(length)


async def test_a_socket_offering_its_session_as_a_subprotocol_is_closed_once_revoked_through_kafka(
    serve: object, revoke: object, broker_gateway: Callable[..., SessionGateway]
) -> None:
    gateway = broker_gateway(gateway_subprotocol_marker="access_token")
    app = Starlette(routes=[WebSocketRoute("/ws", hello)])
    gateway.install(app)
    async with serve(app) as url:  # type: ignore[operator]
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        status, socket, _writer = await handshake(url, "access_token", STOLEN)
        assert status.startswith(b"HTTP/1.1 101"), status
        assert await frame(socket) == (0x1, f"hello {STOLEN}".encode())

        await revoke(STOLEN)  # type: ignore[operator]
        async with asyncio.timeout(20):
            opcode, payload = await frame(socket)  # closed by the gateway, idle as it was
        assert opcode == 0x8 and int.from_bytes(payload[:2]) == 1008, payload

        refused, *_ = await handshake(url, "access_token", STOLEN)
        malformed, *_ = await handshake(url, "access_token", f"{OTHER}.x")
        live, *_ = await handshake(url, "access_token", OTHER)
    assert refused.startswith(b"HTTP/1.1 403") and malformed.startswith(b"HTTP/1.1 403")
    assert live.startswith(b"HTTP/1.1 101")
