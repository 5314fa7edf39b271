"""uvicorn's h11 protocol with its bound on a request's head answered as 431.

uvicorn with httptools (`uvicorn[standard]`'s default) bounds no part of a request outside its
body: llhttp has no limit, and httptools gathers each header value in memory, by repeated
concatenation, until it ends. One connection sending a header of hundreds of megabytes, no
credential needed, held that much memory and the event loop for seconds; a chunked body's
trailer headers, parsed after the head, did the same; and requests pipelined without waiting
for the answers were each queued, hundreds of megabytes of them (found by read-only reviews
written to break it, 2026-12-05 and 2026-12-06).

h11 bounds all three: whatever it holds of an event not yet complete (a request line and its
headers, a chunk header, a trailer) is at most `max_incomplete_event_size`, and uvicorn stops
reading while a pipelined request waits for the one before it. But uvicorn answers every
h11 protocol error, this one included, with `400 Invalid HTTP request received.`, and its own
default bound is h11's 16 KiB, less than the admin API's longest token (16,384 characters)
with the other headers. `HeadLimitedH11` sets the bound to `HEAD_MAX_BYTES` (64 KiB) unless
`--h11-max-incomplete-event-size` says otherwise, and answers a head past it with
`431 Request Header Fields Too Large`.

Use it with `uvicorn --http session_contracts.http_limits:HeadLimitedH11`. h11 is pure Python:
it costs tens of microseconds a request more than httptools, nothing beside a database query.
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import h11
from uvicorn.config import Config
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.server import ServerState

HEAD_MAX_BYTES = 64 * 1024
HEAD_LIMITED_HTTP = "session_contracts.http_limits:HeadLimitedH11"
"""uvicorn's `--http` for `HeadLimitedH11`."""
_REFUSAL = b"request head too large"


class HeadLimitedH11(H11Protocol):
    """`H11Protocol` bounding a request's head (and any part not yet complete) to
    `HEAD_MAX_BYTES`, answering past it with 431."""

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        if config.h11_max_incomplete_event_size is None:
            self.conn = h11.Connection(h11.SERVER, HEAD_MAX_BYTES)

    def send_400_response(self, msg: str) -> None:
        """uvicorn calls this for every protocol error h11 raises; the one hinting 431 (what it
        holds of an incomplete event passed the bound) is answered so."""
        error = sys.exc_info()[1]
        if not isinstance(error, h11.RemoteProtocolError) or error.error_status_hint != 431:
            super().send_400_response(msg)
            return
        headers = [
            (b"content-type", b"text/plain; charset=utf-8"),
            (b"connection", b"close"),
        ]
        response = h11.Response(
            status_code=431, headers=headers, reason=b"Request Header Fields Too Large"
        )
        self.transport.write(self.conn.send(response))
        self.transport.write(self.conn.send(h11.Data(data=_REFUSAL)))
        self.transport.write(self.conn.send(h11.EndOfMessage()))
        self.transport.close()
