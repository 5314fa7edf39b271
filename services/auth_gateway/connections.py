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
on a closed connection does (an app that only pushes stops too).

An HTTP response streamed for long (server-sent events, a long poll, a download) lives on the
same way: until 2026-12-06 it was checked at its start only, and a feed opened before its
session's revocation went on being served. A response whose body comes in parts (a first part
with `more_body`) is now a `WatchedResponse`, filed under every credential its request
carried, from that first part on: a revocation the watcher applies ends its body where it
stands, idle or not; each part the app sends checks the table again; the app's next send
after the end raises as on a connection gone. The client sees its stream end, and its next
request (an `EventSource` reconnects by itself) is refused. A response sent whole (one part,
nearly every one) is never filed: it costs one more call per message.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any, Protocol

from starlette.types import Message, Receive, Scope, Send

from auth_gateway.revocations import RevocationTable

log = logging.getLogger(__name__)

REVOKED_CODE = 1008
"""WebSocket close code: policy violation (RFC 6455), the session was revoked."""
_REVOKED_CLOSE: Message = {"type": "websocket.close", "code": REVOKED_CODE, "reason": "revoked"}
_REVOKED_DISCONNECT: Message = {"type": "websocket.disconnect", "code": REVOKED_CODE}
_BODY_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}


class Watched(Protocol):
    """A connection served past its request's check: closed when a key of it is revoked."""

    keys: tuple[bytes, ...]

    def revoke(self) -> None:
        """One of `keys` was revoked: close the connection now."""


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


class Gate(Protocol):
    """What a `WatchedResponse` asks of the middleware that checked its request."""

    def credential_keys(self, scope: Scope, keys: Any) -> tuple[bytes, ...]:
        """The key of every credential the request carries."""

    async def refuse_revoked(self, scope: Scope, send: Send, key: bytes) -> None:
        """Answer the request as one of a revoked session (401, or 303 to sign-in)."""


LATE_START_SECONDS = 1.0
"""A response started this long after its request's check is checked again before it goes."""


class WatchedResponse:
    """One HTTP response's ASGI `send`: checked again if it starts late, and once its body
    comes in parts, watched under every credential the request carried and ended where it
    stands once one of them is revoked."""

    __slots__ = (
        "_checked_at",
        "_connections",
        "_ended",
        "_ending",
        "_gate",
        "_revoke_asked",
        "_revoked",
        "_scope",
        "_send",
        "_sending",
        "_streaming",
        "_table",
        "_tenant_keys",
        "keys",
    )

    def __init__(
        self,
        scope: Scope,
        tenant_keys: Any,
        gate: Gate,
        checked_at: float,
        table: RevocationTable,
        connections: OpenConnections,
        send: Send,
    ) -> None:
        self.keys: tuple[bytes, ...] = ()
        """The keys of the request's credentials (computed only when needed)."""
        self._scope = scope
        self._tenant_keys = tenant_keys
        self._gate = gate
        self._checked_at = checked_at
        """When the request was checked (`time.monotonic`)."""
        self._table = table
        self._connections = connections
        self._send = send
        self._streaming = False
        """Filed in `connections` (a first part with `more_body` was sent)."""
        self._ended = False
        """The body's last part was sent, by the app or for a revocation."""
        self._revoked = False
        """The response was refused or its body ended for a revocation."""
        self._sending = False
        self._revoke_asked = False
        self._ending: asyncio.Task[None] | None = None

    def revoke(self) -> None:
        """One of the keys was revoked: end the body now, or as soon as the part the app is
        sending has gone (never two sends at once)."""
        self._revoke_asked = True
        if self._streaming and not self._ended and not self._sending and self._ending is None:
            self._ending = asyncio.get_running_loop().create_task(self._end_idle())

    async def _end_idle(self) -> None:
        try:
            await self._end()
        except Exception as exc:  # the client already gone: nothing left to end
            log.debug("ending a revoked session's streamed response failed: %r", exc)

    def _revoked_key(self) -> bytes | None:
        if not self.keys:
            self.keys = self._gate.credential_keys(self._scope, self._tenant_keys)
        table = self._table
        for key in self.keys:
            if key in table:
                return key
        return None

    async def send(self, message: Message) -> None:
        """The app's message, unless the session was revoked meanwhile: a response starting
        late is refused instead (`LATE_START_SECONDS`); a streamed body is ended and this part
        dropped. A later message does what a send on a connection gone does under the
        server's ASGI spec: from 2.4 it raises `OSError`; before, it is dropped, and the app's
        next receive is the disconnect (the server says so once the body is ended). Starlette's
        streaming responses stop either way."""
        if self._revoked:
            if _sends_raise(self._scope):
                raise ConnectionResetError("the session was revoked: the response was ended")
            return
        kind = message["type"]
        if kind == "http.response.start":
            if time.monotonic() - self._checked_at > LATE_START_SECONDS:
                key = self._revoked_key()
                if key is not None:
                    self._revoked = True
                    await self._gate.refuse_revoked(self._scope, self._send, key)
                    return
            await self._send(message)
            return
        if kind != "http.response.body" or self._ended:
            await self._send(message)
            return
        more = message.get("more_body", False)
        if not self._streaming and more:
            self._streaming = True
            self._revoked_key()  # the keys, filed under
            self._connections.add(self)
        if self._streaming and (self._revoke_asked or self._revoked_key() is not None):
            await self._end()
            return
        self._sending = True
        try:
            await self._send(message)
        finally:
            self._sending = False
        if not more:
            self._ended = True
            self.done()
        elif self._revoke_asked:
            await self._end()

    def done(self) -> None:
        """Stop watching (the response is over)."""
        if self._streaming:
            self._connections.discard(self)

    async def _end(self) -> None:
        if self._ended:
            return
        self._ended = self._revoked = True
        self.done()
        await self._send(_BODY_END)


def _sends_raise(scope: Scope) -> bool:
    """Whether a send on a connection gone raises (ASGI HTTP spec 2.4) rather than being
    dropped."""
    spec = str(scope.get("asgi", {}).get("spec_version", "2.0"))
    try:
        return tuple(int(part) for part in spec.split(".")) >= (2, 4)
    except ValueError:
        return False


class OpenConnections:
    """The watched sockets and streamed responses by session key, for the revocations the
    watcher applies."""

    def __init__(self) -> None:
        self._by_key: dict[bytes, set[Watched]] = {}

    def __len__(self) -> int:
        """Connections watched (one counted once, whatever its number of keys)."""
        return len({id(socket) for sockets in self._by_key.values() for socket in sockets})

    def add(self, socket: Watched) -> None:
        """Watch `socket` under each of its keys until `discard`."""
        for key in socket.keys:
            self._by_key.setdefault(key, set()).add(socket)

    def discard(self, socket: Watched) -> None:
        """Stop watching `socket` (its connection ended)."""
        for key in socket.keys:
            sockets = self._by_key.get(key)
            if sockets is not None:
                sockets.discard(socket)
                if not sockets:
                    del self._by_key[key]

    def revoked(self, key: bytes) -> None:
        """A revocation of `key` was applied: close its connections."""
        for socket in tuple(self._by_key.get(key, ())):
            socket.revoke()
