"""A request head past its bound is refused with 431 before it is parsed; bodies and kept-alive
connections are not counted against it. A real uvicorn server on loopback, raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from session_contracts.http_limits import HEAD_MAX_BYTES, HeadLimitedHttpTools

Serve = Callable[[], Awaitable[None]]


@asynccontextmanager
async def server(http: Any = HeadLimitedHttpTools) -> AsyncIterator[tuple[int, list[int]]]:
    """A server answering each request with its body's length; yields the port and the body
    lengths the app was called with."""
    calls: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        calls.append(len(body))
        answer = str(len(body)).encode()
        headers = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=http, lifespan="off", log_level="error"
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    try:
        while not running.started:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        port = running.servers[0].sockets[0].getsockname()[1]
        yield port, calls
    finally:
        running.should_exit = True
        await task


def request(header_bytes: int = 0, body: bytes = b"", *, close: bool = True) -> bytes:
    head = [b"POST / HTTP/1.1", b"host: 127.0.0.1", b"content-length: " + str(len(body)).encode()]
    if header_bytes:
        head.append(b"x-padding: " + b"a" * header_bytes)
    if close:
        head.append(b"connection: close")
    return b"\r\n".join(head) + b"\r\n\r\n" + body


async def exchange(port: int, *writes: bytes) -> bytes:
    """Send each write (draining in between), then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for data in writes:
            writer.write(data)
            await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def test_a_head_past_the_bound_is_refused_431_before_the_app_sees_it() -> None:
    big = request(header_bytes=HEAD_MAX_BYTES + 1)
    async with server() as (port, calls):
        answer = await exchange(port, big)
    assert answer.startswith(b"HTTP/1.1 431 "), answer[:100]
    assert answer.endswith(b"request head too large")
    assert calls == []
    async with server(http="httptools") as (port, calls):  # uvicorn's own: no bound at all
        assert (await exchange(port, big)).startswith(b"HTTP/1.1 200 ")
    assert calls == [0]


async def test_a_head_trickled_in_small_pieces_is_refused_once_past_the_bound() -> None:
    """The server closes the connection soon after the bound, with 431; a client still
    writing may see the connection reset instead (its unread bytes were discarded)."""
    sent = 0
    answer = b""
    async with server() as (port, calls):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: ")
            while sent < 8 * HEAD_MAX_BYTES and not reader.at_eof():
                writer.write(b"a" * 1024)
                await writer.drain()
                sent += 1024
                await asyncio.sleep(0.001)  # the server (this event loop) reads meanwhile
            async with asyncio.timeout(10):
                answer = await reader.read()
        except ConnectionResetError:
            pass  # closed by the server while bytes were still arriving
        finally:
            writer.close()
    assert sent <= 2 * HEAD_MAX_BYTES, sent  # refused soon after the bound, not at the end
    assert answer.startswith(b"HTTP/1.1 431 ") or not answer, answer[:100]
    assert calls == []


async def test_a_head_within_the_bound_and_a_large_body_in_one_write_are_served() -> None:
    body = b"b" * (4 * HEAD_MAX_BYTES)
    async with server() as (port, calls):
        answer = await exchange(port, request(header_bytes=HEAD_MAX_BYTES - 1024, body=body))
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    assert calls == [len(body)]


async def test_each_request_of_a_kept_alive_connection_has_a_bound_of_its_own() -> None:
    near = HEAD_MAX_BYTES - 1024  # three of them are three times the bound
    async with server() as (port, calls):
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in range(3):
                writer.write(request(header_bytes=near, body=b"x" * n, close=n == 2))
                await writer.drain()
                async with asyncio.timeout(10):
                    status = await reader.readline()
                    assert status.startswith(b"HTTP/1.1 200 "), status
                    while await reader.readline() != b"\r\n":
                        pass
                    assert await reader.readexactly(1) == str(n).encode()
        finally:
            writer.close()
    assert calls == [0, 1, 2]
