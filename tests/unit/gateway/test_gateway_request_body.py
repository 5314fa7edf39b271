"""A request body that arrives after its session's revocation is not handed to the app.

The middleware checks a request when its headers arrive. Before stop 66 a client holding a
stolen session could send the headers of a request that changes something (a new API token,
another email address), hold the body back, and send it once the session was revoked: the app
read the body and did what it asked; only its answer was refused, as a late one. uvicorn starts
the app once the headers are complete and does not time out a body being read. A part of the
body arriving more than `LATE_START_SECONDS` after the check is now checked again: for a
revoked session the app is told the client left, and the request is refused. Driven by hand
over ASGI, as a server would.
"""

from __future__ import annotations

import asyncio

import pytest
from revoked_sessions import STOLEN, current_gateway, key, revocation
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.types import Message

from auth_gateway import SessionGateway, connections


async def make_token(request: Request) -> PlainTextResponse:
    """What a request's body asks for, done once the body is read (the side effect)."""
    body = await request.body()
    request.app.state.done.append(body)
    return PlainTextResponse("token made")


@pytest.fixture
def gateway() -> SessionGateway:
    return current_gateway()


@pytest.fixture
def app(gateway: SessionGateway) -> Starlette:
    app = Starlette(routes=[Route("/tokens", make_token, methods=["POST"])])
    app.state.done = []
    gateway.install(app, manage_lifespan=False)
    return app


class HeldBody:
    """A POST whose headers go at once and whose body parts go when the test sends them."""

    def __init__(self, app: Starlette) -> None:
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._parts: asyncio.Queue[Message] = asyncio.Queue()
        self.handed: list[bytes] = []
        """The body parts the app was given."""
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": "POST",
            "scheme": "http",
            "path": "/tokens",
            "raw_path": b"/tokens",
            "root_path": "",
            "query_string": b"",
            "headers": [(b"cookie", f"sid={STOLEN}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        self.task = asyncio.create_task(app(scope, self._receive, self.outbox.put))

    async def _receive(self) -> Message:
        return await self._parts.get()

    async def send_part(self, body: bytes, more: bool = False) -> None:
        await self._parts.put({"type": "http.request", "body": body, "more_body": more})
        for _ in range(50):  # the app reads it, or is told the client left
            await asyncio.sleep(0.001)
            if self._parts.empty():
                return

    async def answer(self) -> tuple[int, bytes]:
        start = await asyncio.wait_for(self.outbox.get(), 5)
        assert start["type"] == "http.response.start"
        body = await asyncio.wait_for(self.outbox.get(), 5)
        await asyncio.wait_for(self.task, 5)
        return int(start["status"]), bytes(body["body"])


async def test_a_body_sent_after_the_revocation_is_not_handed_to_the_app(
    gateway: SessionGateway, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)  # every part is late
    request = HeldBody(app)
    await asyncio.sleep(0.05)  # the headers checked, the app waiting for the body
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    await request.send_part(b"scope=admin")
    status, body = await request.answer()
    assert status == 401 and b"token made" not in body
    assert app.state.done == []  # nothing done for it
    assert gateway.refused["revoked"] == 1


async def test_the_rest_of_a_body_is_not_handed_over_once_the_session_is_revoked(
    gateway: SessionGateway, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first part came before the revocation, the second after it."""
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)
    request = HeldBody(app)
    await request.send_part(b"scope=", more=True)
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    await request.send_part(b"admin")
    status, _ = await request.answer()
    assert status == 401 and app.state.done == []


async def test_a_late_body_of_a_session_not_revoked_is_handed_over(
    gateway: SessionGateway, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)
    request = HeldBody(app)
    await asyncio.sleep(0.05)
    await request.send_part(b"scope=", more=True)
    await request.send_part(b"read")
    status, body = await request.answer()
    assert (status, body) == (200, b"token made")
    assert app.state.done == [b"scope=read"]


async def test_a_body_in_time_is_not_checked_again(gateway: SessionGateway, app: Starlette) -> None:
    """Within `LATE_START_SECONDS` of the check the body goes as the client sent it: a
    revocation in that second is one the request was already under way for."""
    request = HeldBody(app)
    await asyncio.sleep(0.05)  # the headers checked
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    await request.send_part(b"scope=read")
    status, _ = await request.answer()
    assert status == 200 and app.state.done == [b"scope=read"]
