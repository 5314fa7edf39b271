"""WebSockets a session holds open, closed when the session is revoked.

The middleware checks a request once, at its start. A WebSocket lives on after that: before
2026-12-06 one opened before its session's revocation was served for as long as it stayed
open (found by a review; a stolen session keeps its socket). Now the middleware hands every
WebSocket it lets through with a session to a `WatchedSocket`, filed in `OpenConnections`
under the session's key:

- the watcher tells `OpenConnections.revoked` of every revocation it applies, which closes
  that session's sockets at once (code 1008, policy violation), idle ones included;
- each message either way checks the table again, so a revocation the table holds by other
  means is met at the socket's next message;
- a socket whose revocation arrives during the handshake is refused at its accept (403).

After the close the app's sends are dropped and its next receive is the disconnect. An HTTP
response streamed for long (server-sent events) is still checked at its start only.
"""

from __future__ import annotations

import asyncio

from starlette.types import Message, Receive, Send

from auth_gateway.revocations import RevocationTable

REVOKED_CODE = 1008
"""WebSocket close code: policy violation (RFC 6455), the session was revoked."""
_REVOKED_CLOSE: Message = {"type": "websocket.close", "code": REVOKED_CODE, "reason": "revoked"}
_REVOKED_DISCONNECT: Message = {"type": "websocket.disconnect", "code": REVOKED_CODE}


class WatchedSocket:
    """One WebSocket's ASGI `receive` and `send`, closed with 1008 once its session key is in
    the revocation table."""

    def __init__(self, key: bytes, table: RevocationTable, receive: Receive, send: Send) -> None:
        self.key = key
        self._table = table
        self._receive = receive
        self._send = send
        self._accepted = False
        self._closed = False
        self._closing: asyncio.Task[None] | None = None

    def revoke(self) -> None:
        """The session was revoked: close the socket now (the handshake's accept, if it has
        not been sent yet, is refused when it is)."""
        if self._accepted and not self._closed and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())

    async def receive(self) -> Message:
        """The client's next message; the disconnect, with the socket closed, once revoked."""
        message = await self._receive()
        if message["type"] == "websocket.receive" and self.key in self._table:
            await self._close()
            return _REVOKED_DISCONNECT
        return message

    async def send(self, message: Message) -> None:
        """The app's message, unless the session is revoked: then the socket is closed (a
        handshake refused) and this and every later message dropped."""
        if self._closed:
            return
        if self._closing is not None or self.key in self._table:
            await self._close()
            return
        kind = message["type"]
        if kind == "websocket.accept":
            self._accepted = True
        elif kind == "websocket.close":
            self._closed = True
        await self._send(message)

    async def _close(self) -> None:
        if self._closed:
            return
        self._closed = True
        # before the accept, a close refuses the handshake (the server answers 403)
        await self._send(_REVOKED_CLOSE if self._accepted else {"type": "websocket.close"})


class OpenConnections:
    """The watched sockets by session key, for the revocations the watcher applies."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, set[WatchedSocket]] = {}

    def __len__(self) -> int:
        return sum(len(sockets) for sockets in self._by_key.values())

    def add(self, socket: WatchedSocket) -> None:
        """Watch `socket` until `discard`."""
        self._by_key.setdefault(socket.key, set()).add(socket)

    def discard(self, socket: WatchedSocket) -> None:
        """Stop watching `socket` (its connection ended)."""
        sockets = self._by_key.get(socket.key)
        if sockets is not None:
            sockets.discard(socket)
            if not sockets:
                del self._by_key[socket.key]

    def revoked(self, key: bytes) -> None:
        """A revocation of `key` was applied: close its sockets."""
        for socket in tuple(self._by_key.get(key, ())):
            socket.revoke()
