"""An HTTP response streamed for long is ended when its session is revoked; one starting late
is checked again.

Before 2026-12-06 the middleware checked a request once, at its start: a feed (server-sent
events, a long poll) opened before its session's revocation went on being served, and a
response the app took long to start was sent whatever happened meanwhile. The requests here
are driven by hand over ASGI, as a server would (`asgi.spec_version` as the test says).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator
from typing import Any

import pytest
from revoked_sessions import FAR, OTHER, STOLEN, current_gateway, key, revocation
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route
from starlette.types import Message, Receive, Scope, Send

from auth_gateway import GatewaySettings, SessionGateway, connections

END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


def part(text: str) -> Message:
    return {"type": "http.response.body", "body": text.encode(), "more_body": True}


async def idle_feed(request: Request) -> StreamingResponse:
    """One event, then nothing for as long as the client stays (a quiet feed)."""

    async def events() -> AsyncIterator[str]:
        try:
            yield "first"
            await asyncio.Event().wait()
        finally:
            request.app.state.stopped += 1

    return StreamingResponse(events(), media_type="text/event-stream")


async def ticking_feed(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[str]:
        try:
            while True:
                yield "tick"
                await asyncio.sleep(0.01)
        finally:
            request.app.state.stopped += 1

    return StreamingResponse(events(), media_type="text/event-stream")


async def slow_answer(request: Request) -> PlainTextResponse:
    """Revoked while the app works on the answer, which starts late."""
    request.app.state.gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    return PlainTextResponse(f"data of {request.state.session_credential}")


@pytest.fixture
def gateway() -> SessionGateway:
    return current_gateway()


@pytest.fixture
def app(gateway: SessionGateway) -> Starlette:
    app = Starlette(
        routes=[
            Route("/idle", idle_feed),
            Route("/ticks", ticking_feed),
            Route("/slow", slow_answer),
        ]
    )
    app.state.gateway = gateway
    app.state.stopped = 0
    gateway.install(app, manage_lifespan=False)
    return app


class Exchange:
    """One HTTP request to the app, driven by hand: what it is sent, and the server's side of
    the end (once the body is complete, the server tells the app's next receive
    `http.disconnect`, as uvicorn does)."""

    def __init__(
        self,
        app: Starlette,
        path: str,
        headers: list[tuple[bytes, bytes]] | None = None,
        spec_version: str = "2.3",
    ) -> None:
        self.outbox: asyncio.Queue[Message] = asyncio.Queue()
        self._complete = asyncio.Event()
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": spec_version},
            "http_version": "1.1",
            "method": "GET",
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "root_path": "",
            "query_string": b"",
            "headers": headers or [(b"cookie", f"sid={STOLEN}".encode())],
            "client": ("127.0.0.1", 50000),
            "server": ("127.0.0.1", 80),
        }
        self.task = asyncio.create_task(app(scope, self._receive, self._send))

    async def _receive(self) -> Message:
        await self._complete.wait()
        return {"type": "http.disconnect"}

    async def _send(self, message: Message) -> None:
        if self._complete.is_set():
            raise AssertionError(f"sent after the response was complete: {message}")
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self._complete.set()
        await self.outbox.put(message)

    async def received(self) -> Message:
        return await asyncio.wait_for(self.outbox.get(), 5)

    async def started(self) -> int:
        start = await self.received()
        assert start["type"] == "http.response.start"
        return int(start["status"])

    async def finished(self) -> None:
        await asyncio.wait_for(self.task, 5)

    async def ticks_until_the_end(self) -> None:
        """Parts sent before the revocation was met, then the end (a few, never hundreds)."""
        for _ in range(100):
            message = await self.received()
            if message == END:
                return
            assert message == part("tick")
        raise AssertionError("the feed was never ended")


async def test_a_quiet_feed_is_ended_when_the_watcher_applies_its_revocation(
    gateway: SessionGateway, app: Starlette
) -> None:
    stolen, other = (
        Exchange(app, "/idle"),
        Exchange(app, "/idle", [(b"cookie", f"sid={OTHER}".encode())]),
    )
    for feed in (stolen, other):
        assert await feed.started() == 200
        assert await feed.received() == part("first")
    assert len(gateway.connections) == 2  # filed from their first part
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await stolen.received() == END  # ended while idle
    await stolen.finished()  # the app was told of the disconnect: its feed stopped
    assert app.state.stopped == 1 and stolen.outbox.empty()
    assert not other.task.done() and other.outbox.empty()  # another session's feed goes on
    other.task.cancel()
    await asyncio.gather(other.task, return_exceptions=True)
    assert len(gateway.connections) == 0


async def test_a_revocation_in_the_table_is_met_at_the_feeds_next_part(
    gateway: SessionGateway, app: Starlette
) -> None:
    feed = Exchange(app, "/ticks")
    assert await feed.started() == 200
    assert await feed.received() == part("tick")
    gateway.table.add(key(STOLEN), FAR)  # not through the watcher: no one is told
    await feed.ticks_until_the_end()
    await feed.finished()
    assert feed.outbox.empty() and app.state.stopped == 1
    assert len(gateway.connections) == 0


async def test_every_credential_a_feed_carried_is_watched(
    gateway: SessionGateway, app: Starlette
) -> None:
    """The app may read the header while the cookie is the stolen one: both were checked at
    the start, and both are watched."""
    feed = Exchange(
        app, "/idle", [(b"x-session-id", OTHER.encode()), (b"cookie", b"sid=" + STOLEN.encode())]
    )
    assert await feed.started() == 200
    assert await feed.received() == part("first")
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await feed.received() == END
    await feed.finished()


async def test_under_asgi_2_4_the_apps_next_send_after_the_end_raises(
    gateway: SessionGateway,
) -> None:
    """A server of spec 2.4 raises `OSError` on a send to a connection gone, and tells the
    app nothing else: an app that only sends stops on that."""
    told: list[BaseException] = []

    async def pusher(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            while True:
                await send(part("tick"))
                await asyncio.sleep(0.01)
        except OSError as gone:
            told.append(gone)

    app = Starlette()
    app.mount("/", pusher)
    gateway.install(app, manage_lifespan=False)
    feed = Exchange(app, "/push", spec_version="2.4")
    assert await feed.started() == 200
    assert await feed.received() == part("tick")
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    await feed.ticks_until_the_end()
    await feed.finished()
    assert len(told) == 1 and isinstance(told[0], ConnectionResetError)


@pytest.mark.parametrize(
    ("accept", "status"), [(b"application/json", 401), (b"text/html", 303)], ids=["api", "page"]
)
async def test_a_response_starting_late_is_checked_again(
    gateway: SessionGateway,
    app: Starlette,
    monkeypatch: pytest.MonkeyPatch,
    accept: bytes,
    status: int,
) -> None:
    """The app took longer than `LATE_START_SECONDS` to answer, and the session was revoked
    meanwhile: the answer is refused as the request would be now, and the app's never goes
    out."""
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)
    headers = [(b"cookie", f"sid={STOLEN}".encode()), (b"accept", accept)]
    answer = Exchange(app, "/slow", headers)
    start = await answer.received()
    assert start["status"] == status
    sent = dict(start["headers"])
    if status == 303:
        assert sent[b"location"].endswith(b"ended=admin")
    assert sent[b"set-cookie"].startswith(b"sid=;")
    body = await answer.received()
    assert STOLEN.encode() not in body["body"] and not body.get("more_body", False)
    await answer.finished()
    assert answer.outbox.empty()
    assert gateway.refused["revoked"] == 1


async def test_a_response_starting_in_time_is_not_checked_again(
    gateway: SessionGateway, app: Starlette
) -> None:
    """Within `LATE_START_SECONDS` of the check the response goes as the app made it (the
    request's check stands for it), and a response sent whole is never filed."""
    answer = Exchange(app, "/slow")
    assert await answer.started() == 200
    assert (await answer.received())["body"] == f"data of {STOLEN}".encode()
    await answer.finished()
    assert len(gateway.connections) == 0


async def raw(scope: Scope, receive: Receive, send: Send) -> None:
    """The app for the tests below, by path: each sends what `scope["path"]` says."""
    app_state = scope["app_state"]
    path = scope["path"]
    if path == "/late-body":  # the start at once, the whole answer later (a long poll)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await app_state["revoke"]()
        await send({"type": "http.response.body", "body": b"SECRET answer"})
    elif path == "/sized-feed":  # a stream that declared its length: it cannot end early
        headers = [(b"content-length", b"1000")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send(part("first"))
        try:
            await asyncio.Event().wait()
        finally:
            app_state["stopped"] += 1
    elif path == "/zerocopy":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        part_sent = {"type": "http.response.zerocopy", "file": 0, "more_body": True}
        await send(part_sent)
        await asyncio.Event().wait()
    elif path == "/noted":  # an answer the app vouches for, started late
        app_state["authenticate"](scope)
        await app_state["revoke"]()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"data"})


@pytest.fixture
def raw_app(gateway: SessionGateway) -> Starlette:
    state: dict[str, Any] = {"stopped": 0}

    async def revoke_now() -> None:
        gateway.watcher.apply(key(STOLEN), revocation(STOLEN))

    def authenticate(scope: Scope) -> None:
        scope["state"]["session_authenticated"] = True

    state["revoke"] = revoke_now
    state["authenticate"] = authenticate

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        scope["app_state"] = state
        await raw(scope, receive, send)

    wrapped = Starlette()
    wrapped.mount("/", app)
    wrapped.state.raw = state
    gateway.install(wrapped, manage_lifespan=False)
    return wrapped


async def test_a_whole_answer_sent_late_after_its_start_is_not_sent(
    raw_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The start went at once, the body came later, after the revocation: the body is cut
    short (the review of 2026-12-06 read `SECRET answer` at the client)."""
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)
    answer = Exchange(raw_app, "/late-body")
    assert await answer.started() == 200
    assert await answer.received() == END  # an empty body, not the answer
    await answer.finished()
    assert answer.outbox.empty()


async def test_a_feed_that_declared_its_length_is_aborted_not_ended(
    gateway: SessionGateway, raw_app: Starlette
) -> None:
    """An empty last part would not complete a response that declared its length (the server
    refuses it, and the connection stayed open with the app running). Its task is cancelled
    and the middleware returns without completing it: the server closes the connection."""
    feed = Exchange(raw_app, "/sized-feed")
    assert await feed.started() == 200
    assert await feed.received() == part("first")
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    await feed.finished()  # the app cancelled, nothing raised to the server
    assert feed.outbox.empty()  # no last part: the response is left incomplete
    assert raw_app.state.raw["stopped"] == 1
    assert len(gateway.connections) == 0


async def test_zerocopy_parts_are_watched(gateway: SessionGateway, raw_app: Starlette) -> None:
    feed = Exchange(raw_app, "/zerocopy")
    assert await feed.started() == 200
    assert (await feed.received())["type"] == "http.response.zerocopy"
    assert len(gateway.connections) == 1
    gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
    assert await feed.received() == END
    feed.task.cancel()
    await asyncio.gather(feed.task, return_exceptions=True)
    assert len(gateway.connections) == 0


async def test_no_activity_is_reported_for_an_answer_refused_late(
    gateway: SessionGateway, raw_app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app vouched for the session, but its answer was refused: reporting activity would
    show the attacker's address as the revoked session's current one."""
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)
    noted: list[bytes] = []
    monkeypatch.setattr(gateway.activity, "note", lambda key, address: noted.append(key))
    app = Starlette()
    app.mount("/", raw_app.routes[0].app)  # type: ignore[attr-defined]
    gateway.install(app, manage_lifespan=False)
    answer = Exchange(app, "/noted")
    assert await answer.started() == 401
    await answer.finished()
    assert noted == []


async def test_the_late_check_reads_the_gateways_own_clock(
    app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A host may give the gateway its own monotonic clock: the request's check and the late
    check read the same one (the first version read `time.monotonic` for the second)."""
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    now = [1e9]
    gateway = SessionGateway.from_settings(settings, monotonic=lambda: now[0])
    gateway.watcher.mark_current()

    async def slow(request: Request) -> PlainTextResponse:
        gateway.watcher.apply(key(STOLEN), revocation(STOLEN))
        now[0] += 2 * connections.LATE_START_SECONDS  # late by the gateway's clock alone
        return PlainTextResponse("data")

    own = Starlette(routes=[Route("/slow", slow)])
    gateway.install(own, manage_lifespan=False)
    answer = Exchange(own, "/slow")
    assert await answer.started() == 401
    await answer.finished()


async def test_under_asgi_2_4_a_refused_answer_raises_nothing_to_the_server(
    gateway: SessionGateway, app: Starlette, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The app's send after the refusal raises inside the app (as on a connection gone), and
    the middleware keeps it: the server would log each as an app failure."""
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)
    answer = Exchange(app, "/slow", spec_version="2.4")
    assert await answer.started() == 401
    await answer.finished()  # no exception


async def test_an_open_feed_is_ended_once_the_gateway_is_stale(
    gateway: SessionGateway, app: Starlette
) -> None:
    """A feed opened while the revocations were current: once they are stale (failing
    closed), the feed is ended as a new request would be refused. Before stop 66 it was served
    for the whole outage (a review as an attacker)."""
    idle, ticking = Exchange(app, "/idle"), Exchange(app, "/ticks")
    assert await idle.started() == 200 and await idle.received() == part("first")
    assert await ticking.started() == 200
    gateway.watcher.current_until = -math.inf  # read once, not confirmed since
    await ticking.ticks_until_the_end()  # met at its next part
    assert gateway.cut_off_if_stale() == 1  # the idle one, by the eviction tick
    assert await idle.received() == END
    for feed in (idle, ticking):
        await feed.finished()
    assert app.state.stopped == 2 and len(gateway.connections) == 0


async def test_a_response_starting_late_while_stale_is_refused_503(
    gateway: SessionGateway, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(connections, "LATE_START_SECONDS", 0.0)

    async def slow(request: Request) -> PlainTextResponse:
        gateway.watcher.current_until = -math.inf  # stale while the app worked
        return PlainTextResponse("data")

    app = Starlette(routes=[Route("/slow", slow)])
    gateway.install(app, manage_lifespan=False)
    answer = Exchange(app, "/slow")
    assert await answer.started() == 503
    body = await answer.received()
    assert body["body"] == b'{"error":"gateway_stale"}'
    await answer.finished()
    assert gateway.refused["stale"] == 1
