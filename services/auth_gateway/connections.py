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
- every credential the handshake carried is watched (two cookies, a cookie and a header), not
  only the one the app is expected to read: apps differ in which they read (the first cookie
  or the last, the header or the cookie), and the handshake checked them all;
- a socket whose revocation arrives during the handshake is refused at its accept (403).

After the close the app's next receive is the disconnect, and its next send raises as a send
on a closed connection does (an app that only pushes stops too). An HTTP
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
    """One WebSocket's ASGI `receive` and `send`, closed with 1008 once any of its session
    keys (every credential the handshake carried, not only the one the app is expected to
    read) is in the revocation table."""

    def __init__(
        self, keys: tuple[bytes, ...], table: RevocationTable, receive: Receive, send: Send
    ) -> None:
        self.keys = keys
        self._table = table
        self._receive = receive
        self._send = send
        self._accepted = False
        self._closed = False
        """A close was sent, by the app or for a revocation."""
        self._revoked = False
        """The close was sent for a revocation."""
        self._closing: asyncio.Task[None] | None = None

    def revoke(self) -> None:
        """One of the session keys was revoked: close the socket now (the handshake's accept,
        if it has not been sent yet, is refused when it is)."""
        if self._accepted and not self._closed and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())

    def _any_revoked(self) -> bool:
        table = self._table
        return any(key in table for key in self.keys)

    async def receive(self) -> Message:
        """The client's next message; the disconnect, with the socket closed, once revoked."""
        message = await self._receive()
        if message["type"] == "websocket.receive" and (self._revoked or self._any_revoked()):
            await self._close()
            return _REVOKED_DISCONNECT
        return message

    async def send(self, message: Message) -> None:
        """The app's message, unless the session is revoked: then the socket is closed (a
        handshake refused) and this message dropped; a later one raises as a send on a closed
        connection does (Starlette tells the app `WebSocketDisconnect`), so an app that only
        sends stops too."""
        if self._revoked:
            raise ConnectionResetError("the session was revoked: the socket is closed")
        if self._closed:
            return  # the app's own close was sent: what the server would refuse anyway
        if self._closing is not None or self._any_revoked():
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
        self._closed = self._revoked = True
        # before the accept, a close refuses the handshake (the server answers 403)
        await self._send(_REVOKED_CLOSE if self._accepted else {"type": "websocket.close"})


class OpenConnections:
    """The watched sockets by session key, for the revocations the watcher applies."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, set[WatchedSocket]] = {}

    def __len__(self) -> int:
        """Sockets watched (one counted once, whatever its number of keys)."""
        return len({id(socket) for sockets in self._by_key.values() for socket in sockets})

    def add(self, socket: WatchedSocket) -> None:
        """Watch `socket` under each of its keys until `discard`."""
        for key in socket.keys:
            self._by_key.setdefault(key, set()).add(socket)

    def discard(self, socket: WatchedSocket) -> None:
        """Stop watching `socket` (its connection ended)."""
        for key in socket.keys:
            sockets = self._by_key.get(key)
            if sockets is not None:
                sockets.discard(socket)
                if not sockets:
                    del self._by_key[key]

    def revoked(self, key: bytes) -> None:
        """A revocation of `key` was applied: close its sockets."""
        for socket in tuple(self._by_key.get(key, ())):
            socket.revoke()
