"""A WebSocket is checked at its handshake, and closed when its session is revoked later.

Before 2026-12-06 the middleware checked each scope once, at its start: a socket opened before
its session's revocation was served for as long as it stayed open (found by a review: a stolen
session keeps its socket). The app here echoes every message with the credential it serves.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Callable

import pytest
from revoked_sessions import FAR, OTHER, STOLEN, current_gateway, key, revocation
from starlette.applications import Starlette
from starlette.routing import WebSocketRoute
from starlette.types import Message
from starlette.websockets import WebSocket, WebSocketDisconnect

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.connections import REVOKED_CODE


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            text = await websocket.receive_text()
            await websocket.send_text(f"{text} for {websocket.state.session_credential}")
    except WebSocketDisconnect:
        pass


async def push(websocket: WebSocket) -> None:
    """Sends and never reads (a feed): it stops only when a send fails."""
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.send_text("tick")
            await asyncio.sleep(0.01)


async def revoked_during_the_handshake(websocket: WebSocket) -> None:
    gateway: SessionGateway = websocket.app.state.gateway
    gateway.table.add(key(STOLEN), FAR)  # the revocation arrives before the app accepts
    await websocket.accept()
    try:
        await websocket.send_text("served")
    except WebSocketDisconnect as gone:
        websocket.app.state.told = gone.code


async def authenticated_feed(websocket: WebSocket) -> None:
    """Takes the session (the hook), then echoes until the client hangs up."""
    websocket.state.session_authenticated = True
    await websocket.accept()
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.send_text(await websocket.receive_text())


@pytest.fixture
def gateway() -> SessionGateway:
    return current_gateway()


class Socket:
    """One WebSocket to the app, driven by hand: what the client sends, what it is sent."""

    def __init__(
        self,
        app: Starlette,
        credential: str,
        path: str = "/ws",
        headers: list[tuple[bytes, bytes]] | None = None,
        query: bytes = b"",
        subprotocols: list[str] | None = None,
    ) -> None:
        self.inbox: asyncio.Queue[Message] = asyncio.Queue()
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        scope = {
            "type": "websocket",
            "asgi": {"version": "3.0"},
            "scheme": "ws",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": query,
            "headers": headers
            if headers is not None
            else [(b"cookie", f"sid={credential}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
            "subprotocols": subprotocols or [],
        }
        self.task = asyncio.create_task(app(scope, self.inbox.get, self.outbox.put))

    async def handshake(self) -> Message:
        await self.inbox.put({"type": "websocket.connect"})
        return await self.received()

    async def say(self, text: str) -> None:
        await self.inbox.put({"type": "websocket.receive", "text": text})

    async def received(self) -> Message:
        return await asyncio.wait_for(self.outbox.get(), 5)

    async def hang_up(self) -> None:
        await self.inbox.put({"type": "websocket.disconnect", "code": 1000})
        await asyncio.wait_for(self.task, 5)


@pytest.fixture
def app(gateway: SessionGateway) -> Starlette:
    app = Starlette(
        routes=[
            WebSocketRoute("/ws", echo),
            WebSocketRoute("/late", revoked_during_the_handshake),
            WebSocketRoute("/push", push),
            WebSocketRoute("/feed", authenticated_feed),
        ]
    )
    app.state.gateway = gateway
    gateway.install(app, manage_lifespan=False)
    return app


ACCEPTED: Message = {"type": "websocket.accept", "subprotocol": None, "headers": []}
REVOKED: Message = {"type": "websocket.close", "code": REVOKED_CODE, "reason": "revoked"}


def text(message: str) -> Message:
    return {"type": "websocket.send", "text": message}


async def test_an_open_socket_is_closed_when_the_watcher_applies_its_revocation(
    gateway: SessionGateway, app: Starlette
) -> None:
    stolen, other = Socket(app, STOLEN), Socket(app, OTHER)
    assert await stolen.handshake() == ACCEPTED
    assert await other.handshake() == ACCEPTED
    await stolen.say("before")
    assert await stolen.received() == text(f"before for {STOLEN}")
    assert len(gateway.connections) == 2
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await stolen.received() == REVOKED  # closed while idle
    await stolen.say("after")  # what a client sends meanwhile is never served
    await stolen.hang_up()  # the server's side of the closing handshake
    assert stolen.outbox.empty()
    await other.say("still")  # another session's socket is left alone
    assert await other.received() == text(f"still for {OTHER}")
    await other.hang_up()
    assert len(gateway.connections) == 0


async def test_a_revocation_in_the_table_is_met_at_the_sockets_next_message(
    gateway: SessionGateway, app: Starlette
) -> None:
    stolen = Socket(app, STOLEN)
    assert await stolen.handshake() == ACCEPTED
    gateway.table.add(key(STOLEN), FAR)  # not through the watcher: no one is told
    await stolen.say("after")
    assert await stolen.received() == REVOKED  # never served
    await asyncio.wait_for(stolen.task, 5)  # the app was told of the disconnect
    assert stolen.outbox.empty() and len(gateway.connections) == 0


async def test_a_session_revoked_during_the_handshake_is_refused_at_the_accept(
    app: Starlette,
) -> None:
    late = Socket(app, STOLEN, "/late")
    assert await late.handshake() == {"type": "websocket.close"}  # the server answers 403
    await asyncio.wait_for(late.task, 5)
    assert late.outbox.empty()  # "served" never went out
    assert app.state.told == 1006  # the app's send failed as on a connection gone


async def test_a_new_handshake_of_a_revoked_session_is_refused(
    gateway: SessionGateway, app: Starlette
) -> None:
    gateway.table.add(key(STOLEN), FAR)
    refused = Socket(app, STOLEN)
    assert (await refused.handshake())["type"] == "websocket.close"
    await asyncio.wait_for(refused.task, 5)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"cookie", f"sid={STOLEN}; sid={OTHER}".encode())],  # an app reading the first
        [(b"cookie", f"sid={STOLEN}; sid=".encode())],  # the last not an id: no session read
        [(b"cookie", f"sid={STOLEN}; sid=a b".encode())],
        [(b"x-session-id", OTHER.encode()), (b"cookie", f"sid={STOLEN}".encode())],
    ],
    ids=["first-of-two-cookies", "last-cookie-empty", "last-cookie-spaced", "cookie-and-header"],
)
async def test_every_credential_a_socket_carried_is_watched(
    gateway: SessionGateway, app: Starlette, headers: list[tuple[bytes, bytes]]
) -> None:
    """Apps differ in which credential they read (the first cookie or the last, the cookie or
    the header); the handshake checked them all, and the socket is closed when any is revoked.
    Only the one the gateway expected the app to read was watched at first (a review)."""
    socket = Socket(app, STOLEN, headers=headers)
    assert await socket.handshake() == ACCEPTED
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await socket.received() == REVOKED
    await socket.hang_up()
    assert len(gateway.connections) == 0


async def test_an_app_that_only_sends_stops_once_its_socket_is_closed(
    gateway: SessionGateway, app: Starlette
) -> None:
    feed = Socket(app, STOLEN, "/push")
    assert await feed.handshake() == ACCEPTED
    assert await feed.received() == text("tick")
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    while (message := await feed.received()) != REVOKED:
        assert message == text("tick")  # sent before the close went out
    await asyncio.wait_for(feed.task, 5)  # its next send failed: it ended, nothing kept
    assert feed.outbox.empty() and len(gateway.connections) == 0


async def test_a_message_after_the_close_is_not_served_once_the_revocation_is_gone(
    gateway: SessionGateway, app: Starlette
) -> None:
    stolen = Socket(app, STOLEN)
    assert await stolen.handshake() == ACCEPTED
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await stolen.received() == REVOKED
    gateway.table.discard(key(STOLEN))  # evicted, or tombstoned, before the client's frame
    await stolen.say("late")
    await asyncio.wait_for(stolen.task, 5)
    assert stolen.outbox.empty()  # never served


STALE: Message = {"type": "websocket.close", "code": 1013, "reason": "stale"}


async def test_open_sockets_are_closed_once_the_gateway_is_stale(
    gateway: SessionGateway, app: Starlette
) -> None:
    """The revocations went stale (a broker outage past the bound): a new request with a session
    is refused 503, and before stop 66 an open socket was served for the whole outage, a
    revocation made meanwhile unmet (a review as an attacker). Closed with 1013 (try again
    later), each second's eviction tick doing it while idle."""
    first, second = Socket(app, STOLEN), Socket(app, OTHER)
    assert await first.handshake() == ACCEPTED
    assert await second.handshake() == ACCEPTED
    assert gateway.cut_off_if_stale() == 0  # current: nothing closed
    gateway.watcher.current_until = -math.inf  # read once, not confirmed since
    await first.say("after")  # met at the next message
    assert await first.received() == STALE
    assert gateway.cut_off_if_stale() == 1  # the idle one, by the tick
    assert await second.received() == STALE
    for socket in (first, second):
        await socket.hang_up()
        assert socket.outbox.empty()
    assert len(gateway.connections) == 0


async def test_a_fail_open_gateway_leaves_open_sockets_alone_when_stale() -> None:
    settings = GatewaySettings(
        KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme", gateway_fail_open=True
    )
    gateway = SessionGateway.from_settings(settings)
    gateway.watcher.mark_current()
    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    gateway.install(app, manage_lifespan=False)
    socket = Socket(app, STOLEN)
    assert await socket.handshake() == ACCEPTED
    gateway.watcher.current_until = -math.inf
    assert gateway.cut_off_if_stale() == 0
    await socket.say("still")
    assert await socket.received() == text(f"still for {STOLEN}")
    await socket.hang_up()


async def test_a_socket_carrying_its_session_in_the_query_is_checked_and_watched() -> None:
    """A browser's WebSocket cannot set a header, so an app may take the session from the
    query string (`SESSIONS_GATEWAY_QUERY_PARAM`): before stop 67 the gateway never read it,
    and a revoked session opened sockets as it liked."""
    gateway = current_gateway(gateway_query_param="access_token")
    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    gateway.install(app, manage_lifespan=False)
    socket = Socket(app, "", headers=[], query=f"access_token={STOLEN}".encode())
    assert await socket.handshake() == ACCEPTED
    await socket.say("before")
    assert await socket.received() == text(f"before for {STOLEN}")
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await socket.received() == REVOKED
    await socket.hang_up()
    again = Socket(app, "", headers=[], query=f"v=1&access_token={STOLEN}".encode())
    assert (await again.handshake())["type"] == "websocket.close"  # the server answers 403
    await asyncio.wait_for(again.task, 5)


def offering(app: Starlette, *protocols: str, listed: bool = True, header: bool = True) -> Socket:
    """A socket whose handshake offers these subprotocols (no cookie), in the server's list
    and in the header it came from (or in one of them only: servers differ)."""
    value = ", ".join(protocols).encode("latin-1")
    headers = [(b"sec-websocket-protocol", value)] if header else []
    return Socket(app, "", headers=headers, subprotocols=list(protocols) if listed else [])


async def test_a_socket_carrying_its_session_in_a_subprotocol_is_checked_and_watched() -> None:
    """A browser's WebSocket can offer subprotocols where it can set no header
    (`new WebSocket(url, ["access_token", id])`), which keeps the id out of the URL and its
    logs (`SESSIONS_GATEWAY_SUBPROTOCOL_MARKER`, since stop 67; before, never read)."""
    gateway = current_gateway(gateway_subprotocol_marker="access_token")
    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    gateway.install(app, manage_lifespan=False)
    socket = offering(app, "chat", "access_token", STOLEN)
    assert await socket.handshake() == ACCEPTED
    await socket.say("before")
    assert await socket.received() == text(f"before for {STOLEN}")  # the id the app reads
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await socket.received() == REVOKED
    await socket.hang_up()
    refused = [
        ("access_token", STOLEN),  # revoked
        ("access_token", f"{STOLEN}.x"),  # not the id as is: malformed
        ("access_token", f'"{OTHER}"'),
        ("chat", STOLEN),  # no marker: an app reading subprotocols[-1] reads it
        tuple(f"p{n}" for n in range(17)),  # more than are looked up
    ]
    for offered in refused:
        again = offering(app, *offered)
        assert (await again.handshake())["type"] == "websocket.close", offered
        await asyncio.wait_for(again.task, 5)
    signed_out = offering(app, "chat", "access_token")
    assert await signed_out.handshake() == ACCEPTED  # the marker last: no session
    await signed_out.hang_up()
    assert gateway.refused == {
        "revoked": 2,
        "tenant_unknown": 0,
        "not_ready": 0,
        "stale": 0,
        "cookie_too_large": 0,
        "too_many_credentials": 1,
        "malformed_credential": 2,
    }


@pytest.mark.parametrize(
    "socket",
    [
        lambda app: offering(app, "access_token", STOLEN, listed=False),  # the header only
        lambda app: offering(app, "access_token", STOLEN, header=False),  # the list only
        lambda app: Socket(  # two headers, the session in the second
            app,
            "",
            headers=[
                (b"sec-websocket-protocol", f"access_token, {OTHER}".encode()),
                (b"sec-websocket-protocol", f"access_token, {STOLEN}".encode()),
            ],
        ),
        # not tokens, which no browser can offer, and some app splits on the space: refused
        lambda app: offering(app, f"access_token {STOLEN}"),
        lambda app: offering(app, f"access_token\t{OTHER}"),
        lambda app: offering(app, f"access_token;{OTHER}"),
    ],
    ids=["header-only", "list-only", "second-header", "space", "tab", "semicolon"],
)
async def test_a_subprotocol_session_is_found_wherever_an_app_may_read_it(
    socket: Callable[[Starlette], Socket],
) -> None:
    gateway = current_gateway(gateway_subprotocol_marker="access_token")
    gateway.table.add(key(STOLEN), FAR)
    app = Starlette(routes=[WebSocketRoute("/ws", echo)])
    gateway.install(app, manage_lifespan=False)
    refused = socket(app)
    assert (await refused.handshake())["type"] == "websocket.close"
    await asyncio.wait_for(refused.task, 5)


async def test_an_open_socket_is_activity_for_as_long_as_it_is_open(
    gateway: SessionGateway, app: Starlette
) -> None:
    """Reported only when it ended, a socket's session looked idle to the registry, which
    expired it; no termination then reached it, and nothing closed the socket (a review, stop
    70). While it is open and the app has taken the session, each flush notes its activity,
    which is reported once an interval; not once it is closed, nor for a socket the app did
    not authenticate."""
    noted: list[bytes] = []

    def note(key: bytes, client_ip: str | None) -> None:
        noted.append(key)

    gateway.activity.note = note  # type: ignore[method-assign]
    fed, anonymous = Socket(app, STOLEN, path="/feed"), Socket(app, OTHER)
    try:
        assert await fed.handshake() == ACCEPTED
        assert await anonymous.handshake() == ACCEPTED
        gateway.activity.note_held()
        gateway.activity.note_held()
        assert noted == [key(STOLEN), key(STOLEN)]  # each flush (`note` debounces per interval)
    finally:
        await fed.hang_up()
        await anonymous.hang_up()
    noted.clear()
    gateway.activity.note_held()
    assert noted == []  # released with the connection
