"""A request head, or a chunked body's trailer, past its bound is refused with 431 before it
is held whole; bodies and kept-alive connections are not counted against it. A real uvicorn
server on loopback, raw sockets."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import uvicorn

from session_contracts.http_limits import HEAD_MAX_BYTES, HeadLimitedH11


@asynccontextmanager
async def server(http: Any = HeadLimitedH11) -> AsyncIterator[tuple[int, list[int]]]:
    """A server answering each request with its body's length; yields the port and the body
    lengths the app was called with."""
    calls: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        body = b""
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        calls.append(len(body))
        answer = str(len(body)).encode()
        headers = [(b"content-length", str(len(answer)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": answer})

    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, http=http, lifespan="off", log_level="critical"
    )
    running = uvicorn.Server(config)
    task = asyncio.create_task(running.serve())
    try:
        while not running.started:
            assert not task.done(), task
            await asyncio.sleep(0.01)
        yield running.servers[0].sockets[0].getsockname()[1], calls
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


async def exchange(port: int, data: bytes) -> bytes:
    """Send `data`, then read until the server closes."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(10):
            return await reader.read()
    finally:
        writer.close()


async def trickle(port: int, start: bytes, piece: bytes) -> tuple[int, bytes]:
    """Send `start`, then `piece` after `piece` until the server closes (or 8 bounds' worth);
    what was sent, and what was read (nothing if the connection was reset first)."""
    sent, answer = 0, b""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(start)
        while sent < 8 * HEAD_MAX_BYTES and not reader.at_eof():
            writer.write(piece)
            await writer.drain()
            sent += len(piece)
            await asyncio.sleep(0.001)  # the server (this event loop) reads meanwhile
        async with asyncio.timeout(10):
            answer = await reader.read()
    except ConnectionResetError:
        pass  # closed by the server while bytes were still arriving: unread ones reset it
    finally:
        writer.close()
    return sent, answer


async def test_a_head_past_the_bound_is_refused_431_before_the_app_sees_it() -> None:
    unfinished = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: " + b"a" * HEAD_MAX_BYTES
    async with server() as (port, calls):
        answer = await exchange(port, unfinished)
        within = await exchange(port, request(header_bytes=HEAD_MAX_BYTES - 1024))
    assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer[:100]
    assert answer.endswith(b"request head too large")
    assert within.startswith(b"HTTP/1.1 200 "), within[:100]
    assert calls == [0]
    # uvicorn's own h11 protocol: 16 KiB, and a 400 that does not say why
    async with server(http="h11") as (port, calls):
        answer = await exchange(port, unfinished[: 20 * 1024])
    assert answer.startswith(b"HTTP/1.1 400 "), answer[:100]


async def test_a_head_trickled_in_small_pieces_is_refused_once_past_the_bound() -> None:
    async with server() as (port, calls):
        start = b"GET / HTTP/1.1\r\nhost: 127.0.0.1\r\nx-padding: "
        sent, answer = await trickle(port, start, b"a" * 1024)
    assert sent <= 2 * HEAD_MAX_BYTES, sent  # refused soon after the bound, not at the end
    assert answer.startswith(b"HTTP/1.1 431 ") or not answer, answer[:100]
    assert calls == []


async def test_a_chunked_bodys_trailer_is_bound_as_a_head_is() -> None:
    """Trailer headers come after the head and its bound; httptools gathered them without one
    (a review found it held 13 MiB of one endless trailer and went on reading)."""
    start = (
        b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\ntransfer-encoding: chunked\r\n\r\n"
        b"5\r\nhello\r\n0\r\nx-trailer: "
    )
    async with server() as (port, calls):
        sent, answer = await trickle(port, start, b"a" * 1024)
    assert sent <= 2 * HEAD_MAX_BYTES, sent
    assert answer.startswith(b"HTTP/1.1 431 ") or not answer, answer[:100]
    assert calls == []  # the body never ended


async def test_a_head_within_the_bound_and_a_large_body_in_one_write_are_served() -> None:
    body = b"b" * (4 * HEAD_MAX_BYTES)
    chunked = b"".join(b"400\r\n" + b"c" * 1024 + b"\r\n" for _ in range(300)) + b"0\r\n\r\n"
    async with server() as (port, calls):
        answer = await exchange(port, request(header_bytes=HEAD_MAX_BYTES - 1024, body=body))
        in_chunks = await exchange(
            port,
            b"POST / HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n"
            b"transfer-encoding: chunked\r\n\r\n" + chunked,
        )
    assert answer.startswith(b"HTTP/1.1 200 "), answer[:100]
    assert in_chunks.startswith(b"HTTP/1.1 200 "), in_chunks[:100]  # 300 chunk headers
    assert calls == [len(body), 300 * 1024]


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
