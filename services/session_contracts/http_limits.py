"""uvicorn's httptools protocol with a bound on the request head: line and headers.

uvicorn with httptools (`uvicorn[standard]`, the project's server) sets no limit on the size of
a request's headers: llhttp has none, and httptools gathers each header value in memory until
it ends, by repeated concatenation. One connection sending a header of hundreds of megabytes,
no credential needed, held that much memory and the event loop for seconds (issue 13's gateway
review measured 64 MiB). `HeadLimitedHttpTools` counts the bytes of each request's head as
they arrive, before the parser sees them, and answers `431 Request Header Fields Too Large`
and closes the connection past `HEAD_MAX_BYTES` (64 KiB: four times the admin API's longest
token, and over what browsers send).

Use it with `uvicorn --http session_contracts.http_limits:HeadLimitedHttpTools`.

What is counted: from a request's first byte to the blank line ending its head. A body is not
counted (the apps bound their bodies). A request pipelined behind another in the same read is
counted from the read after the one where it starts, so its head may pass the bound by one read
(at most 256 KiB).
"""

from __future__ import annotations

import logging

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

HEAD_MAX_BYTES = 64 * 1024
HEAD_LIMITED_HTTP = "session_contracts.http_limits:HeadLimitedHttpTools"
"""uvicorn's `--http` for `HeadLimitedHttpTools`."""
_END_OF_HEAD = b"\r\n\r\n"
_REFUSAL = b"request head too large"

log = logging.getLogger("uvicorn.error")


class HeadLimitedHttpTools(HttpToolsProtocol):
    """`HttpToolsProtocol` refusing a request head past `head_max_bytes` with 431."""

    head_max_bytes = HEAD_MAX_BYTES

    _head_open = True
    """A head is being received (from a message's start to the blank line ending its head)."""
    _head_bytes = 0
    _tail = b""
    """The last bytes of the head so far: its end may straddle two reads."""
    _refused = False

    def data_received(self, data: bytes) -> None:
        """Count the head's bytes in `data`, refuse past the bound, else parse as uvicorn does."""
        if self._refused:
            return
        if self._head_open:
            seen = self._tail + data
            end = seen.find(_END_OF_HEAD)
            if end < 0:
                self._head_bytes += len(data)
                self._tail = seen[-(len(_END_OF_HEAD) - 1) :]
            else:  # the rest of the read is the body, or a request pipelined behind it
                self._head_bytes += end + len(_END_OF_HEAD) - len(self._tail)
                self._head_open = False
            if self._head_bytes > self.head_max_bytes:
                self._refuse()
                return
        super().data_received(data)

    def on_message_begin(self) -> None:
        """A message starts: its head is counted from the next read."""
        super().on_message_begin()
        self._head_open = True

    def on_headers_complete(self) -> None:
        """The head ended: nothing more is counted until the next message."""
        self._head_open = False
        self._head_bytes = 0
        self._tail = b""
        super().on_headers_complete()

    def _refuse(self) -> None:
        self._refused = True
        log.warning(
            "request head of more than %d bytes refused (431) from %s",
            self.head_max_bytes,
            f"{self.client[0]}:{self.client[1]}" if self.client else "an unknown client",
        )
        content = [STATUS_LINE[431]]
        for name, value in self.server_state.default_headers:
            content.extend([name, b": ", value, b"\r\n"])
        content.extend(
            [
                b"content-type: text/plain; charset=utf-8\r\n",
                b"content-length: " + str(len(_REFUSAL)).encode("ascii") + b"\r\n",
                b"connection: close\r\n",
                b"\r\n",
                _REFUSAL,
            ]
        )
        self.transport.write(b"".join(content))
        self.transport.close()
