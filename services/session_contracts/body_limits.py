"""Size limits on what a request may carry: a long query string is 414, a large body 413 (the
admin API's, and the demo service's open sign-in routes).

Checked before any handler runs, so no endpoint reads (or parses, or buffers) more than the
limit: a declared `Content-Length` over it is refused at once, and a body sent without one
(chunked) is cut off as soon as the bytes received pass it.
"""

from __future__ import annotations

import json

from fastapi import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(HTTPException):
    """Raised from `receive` once a body passes the limit; FastAPI answers it as a 413."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            detail=f"request body exceeds the {limit} byte limit",
        )


class RequestLimits:
    """ASGI middleware enforcing `max_query_bytes` and `max_body_bytes` with JSON errors."""

    def __init__(self, app: ASGIApp, *, max_query_bytes: int, max_body_bytes: int) -> None:
        self.app = app
        self.max_query_bytes = max_query_bytes
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"")
        if len(query) > self.max_query_bytes:
            detail = f"query string of {len(query)} bytes exceeds the {self.max_query_bytes} limit"
            await _answer(send, 414, detail)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_body_bytes:
            await _answer(send, 413, _body_detail(self))
            return
        received = 0
        started = False

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(self.max_body_bytes)
            return message

        async def watching_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, watching_send)
        except BodyTooLarge:  # read outside a FastAPI handler: answer here if still possible
            if started:
                raise
            await _answer(send, 413, _body_detail(self))


def _body_detail(limits: RequestLimits) -> str:
    return f"request body exceeds the {limits.max_body_bytes} byte limit"


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _answer(send: Send, code: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": code,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
