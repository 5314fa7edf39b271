"""WebSockets and streamed HTTP responses a session holds open, cut off when the session is
revoked.

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
session's revocation went on being served. Every response of a request with a credential now
goes through a `WatchedResponse`:

- one whose body comes in parts is filed under every credential its request carried, from its
  first part on; a revocation the watcher applies cuts it short where it stands, idle or not,
  and each part the app sends checks the table again. A body of unstated length is ended (an
  empty last part: the client sees the stream end, and its next request, which an
  `EventSource` makes by itself, is refused); one that declared its length, which no early
  end completes, is aborted (the app's task cancelled, or its send raising `Aborted`), and the
  server closes the connection;
- one that starts, or sends its whole body, more than `LATE_START_SECONDS` after its request's
  check is checked again: refused as the request would be now, or its body cut short;
- a request body, or a part of it, that arrives more than `LATE_START_SECONDS` after the
  check is checked again: for a session revoked meanwhile it is not handed to the app, which
  is told the client left, and the request is refused (since stop 66: a client could send the
  headers, hold the body back, and send it after the revocation).

A response sent whole in time goes straight to the server's send, with no coroutine of this
module in between.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Protocol

from starlette.types import Message, Receive, Scope, Send

from auth_gateway.revocations import RevocationTable

log = logging.getLogger(__name__)

REVOKED_CODE = 1008
"""WebSocket close code: policy violation (RFC 6455), the session was revoked."""
_REVOKED_CLOSE: Message = {"type": "websocket.close", "code": REVOKED_CODE, "reason": "revoked"}
STALE_CODE = 1013
"""WebSocket close code: try again later (RFC 6455 registry), the gateway cannot vouch for the
session now (its revocations are stale)."""
_STALE_CLOSE: Message = {"type": "websocket.close", "code": STALE_CODE, "reason": "stale"}
_REVOKED_DISCONNECT: Message = {"type": "websocket.disconnect", "code": REVOKED_CODE}
_BODY_END: Message = {"type": "http.response.body", "body": b"", "more_body": False}
_LEFT: Message = {"type": "http.disconnect"}


def _revoked_key(keys: tuple[bytes, ...], table: RevocationTable) -> bytes | None:
    """The first of `keys` the table holds revoked, if any."""
    for key in keys:
        if key in table:
            return key
    return None


class Watched(Protocol):
    """A connection served past its request's check: closed when a key of it is revoked."""

    keys: tuple[bytes, ...]

    def revoke(self) -> None:
        """One of `keys` was revoked: close the connection now."""

    def cut_off_stale(self) -> None:
        """The gateway's revocations went stale (fail-closed): close the connection now."""


def _always() -> bool:
    return True


class WatchedSocket:
    """One WebSocket's ASGI `receive` and `send`, closed with 1008 once any of its session
    keys (every credential the handshake carried, not only the one the app is expected to
    read) is in the revocation table."""

    def __init__(
        self,
        keys: tuple[bytes, ...],
        table: RevocationTable,
        receive: Receive,
        send: Send,
        vouches: Callable[[], bool] = _always,
    ) -> None:
        self.keys = keys
        self._table = table
        self._vouches = vouches
        """Whether the gateway can vouch for a session now (not stale, or fail-open)."""
        self._stale = False
        """The close was sent because the gateway could not vouch (1013), not a revocation."""
        self._receive = receive
        self._send = send
        self._accepted = False
        self._closed = False
        """A close was sent, by the app or for a revocation."""
        self._revoked = False
        """The close was sent for a revocation."""
        self._closing: asyncio.Task[None] | None = None

    @property
    def revoked(self) -> bool:
        """Closed (or refused) for a revocation."""
        return self._revoked

    def revoke(self) -> None:
        """One of the session keys was revoked: close the socket now (the handshake's accept,
        if it has not been sent yet, is refused when it is)."""
        if self._accepted and not self._closed and self._closing is None:
            self._closing = asyncio.get_running_loop().create_task(self._close())

    def cut_off_stale(self) -> None:
        """The gateway cannot vouch for the session now: close the socket (1013)."""
        if self._accepted and not self._closed and self._closing is None:
            self._stale = True
            self._closing = asyncio.get_running_loop().create_task(self._close())

    def _any_revoked(self) -> bool:
        if _revoked_key(self.keys, self._table) is not None:
            return True
        if not self._vouches():
            self._stale = True
            return True
        return False

    async def receive(self) -> Message:
        """The client's next message; the disconnect, with the socket closed, once revoked (or
        once the gateway cannot vouch for the session: its revocations stale)."""
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
        if not self._accepted:
            await self._send({"type": "websocket.close"})
        else:
            await self._send(_STALE_CLOSE if self._stale else _REVOKED_CLOSE)


class Gate(Protocol):
    """What a `WatchedResponse` asks of the middleware that checked its request."""

    table: RevocationTable
    connections: OpenConnections
    now: Callable[[], float]
    """The clock the request was checked by (monotonic seconds)."""

    async def refuse_revoked(self, scope: Scope, send: Send, key: bytes) -> None:
        """Answer the request as one of a revoked session (401, or 303 to sign-in)."""

    def vouches(self) -> bool:
        """Whether a session can be vouched for now: the revocations current, or fail-open."""

    async def refuse_stale(self, scope: Scope, send: Send) -> None:
        """Answer the request as one the gateway cannot vouch for now (503)."""


LATE_START_SECONDS = 1.0
"""A response started, or sent whole, this long after its request's check is checked again
before it goes."""
_BODY_PARTS = frozenset({"http.response.body", "http.response.zerocopy"})
"""The messages carrying a part of the body (`more_body`: more to come)."""


class Aborted(Exception):
    """Raised into the app from its `send` when its response is cut off for a revocation
    (caught by the middleware, which returns without completing the response: the server
    closes the connection)."""


class WatchedResponse:
    """One HTTP response's ASGI `send`: checked again if it starts, or is sent whole, late;
    once its body comes in parts, watched under every credential the request carried, and cut
    short where it stands once one of them is revoked (ended, or for a response that declared
    its length, aborted)."""

    __slots__ = (
        "_checked_at",
        "_ended",
        "_ending",
        "_gate",
        "_now",
        "_receive",
        "_revoke_asked",
        "_scope",
        "_send",
        "_sending",
        "_start",
        "_streaming",
        "_task",
        "aborted",
        "keys",
        "revoked",
    )

    def __init__(
        self,
        gate: Gate,
        scope: Scope,
        keys: tuple[bytes, ...],
        checked_at: float,
        send: Send,
        receive: Receive | None = None,
    ) -> None:
        self.keys = keys
        """The keys of every credential the request carried, as its check computed them."""
        self._gate = gate
        self._scope = scope
        self._checked_at = checked_at
        """When the request was checked (`gate.now`)."""
        self._send = send
        self._receive = receive
        self._now = gate.now
        self._task: asyncio.Task[object] | None = None
        """The task serving the request, once the body streams (cancelled to abort it idle)."""
        self._start: Message | None = None
        self._streaming = False
        """Filed in the gate's connections (a first part with `more_body` was sent)."""
        self._ended = False
        """The body's last part was sent (by the app or for a revocation), or it was aborted."""
        self.revoked = False
        """Refused, ended or aborted for a revocation: the app's next messages go nowhere."""
        self.aborted = False
        """Cut off for a revocation without completing (the task cancelled or `Aborted`)."""
        self._sending = False
        self._revoke_asked = False
        self._ending: asyncio.Task[None] | None = None

    def revoke(self) -> None:
        """One of the keys was revoked: cut the body short now, or as soon as the part the app
        is sending has gone (never two sends at once)."""
        self._revoke_asked = True
        if self._streaming and not self._ended and not self._sending and self._ending is None:
            if self._can_end():
                self._ending = asyncio.get_running_loop().create_task(self._end_idle())
            else:
                self._cut_off()
                if self._task is not None:
                    self._task.cancel()

    def cut_off_stale(self) -> None:
        """The gateway cannot vouch for the session now: cut the body short as for a
        revocation."""
        self.revoke()

    async def _end_idle(self) -> None:
        try:
            await self._end()
        except Exception as exc:  # the client already gone: nothing left to end
            log.warning("ending a revoked session's streamed response failed: %r", exc)

    def _revoked_key(self) -> bytes | None:
        return _revoked_key(self.keys, self._gate.table)

    async def _refused_now(self) -> bool:
        """Before its start: answer the request as it would be answered now, if its session
        is revoked (401, or 303 to sign-in) or cannot be vouched for (503); whether it was."""
        key = self._revoked_key()
        if key is None and self._gate.vouches():
            return False
        self.revoked = self._ended = True
        if key is not None:
            await self._gate.refuse_revoked(self._scope, self._send, key)
        else:
            await self._gate.refuse_stale(self._scope, self._send)
        return True

    def _vouched(self) -> bool:
        """No key revoked, and the gateway's revocations current (or fail-open)."""
        return self._revoked_key() is None and self._gate.vouches()

    def _late(self) -> bool:
        return self._now() - self._checked_at > LATE_START_SECONDS

    async def receive(self) -> Message:
        """The request's next message. A part of its body that arrives more than
        `LATE_START_SECONDS` after the check, for a session revoked meanwhile, is not handed
        over: the request is answered as revoked (its response cut short, if it started), and
        the app is told the client left (`http.disconnect`), so what the body was for is not
        done. Before stop 66 a request whose headers were checked before the revocation could
        hold its body back and send it after: the app then acted on it (a review)."""
        assert self._receive is not None
        message = await self._receive()
        if message["type"] != "http.request":
            return message
        if self.revoked:
            return _LEFT
        if not self._late() or self._vouched():
            return message
        if self._start is None:
            await self._refused_now()
        else:
            await self._cut_short()
        return _LEFT

    def send(self, message: Message) -> Awaitable[None]:
        """The app's message (`_checked_send`). A response's start and its whole body, in time,
        go straight to the server's send: no coroutine of this one in between."""
        if self.revoked or self._streaming:
            return self._checked_send(message)
        kind = message["type"]
        if kind == "http.response.start":
            if self._now() - self._checked_at > LATE_START_SECONDS:
                return self._checked_send(message)
            self._start = message
            return self._send(message)
        if kind == "http.response.body" and not self._ended and not message.get("more_body"):
            if self._now() - self._checked_at > LATE_START_SECONDS:
                return self._checked_send(message)
            self._ended = True
            return self._send(message)
        return self._checked_send(message)

    async def _checked_send(self, message: Message) -> None:
        """The app's message, unless the session was revoked meanwhile: a response starting
        late is refused instead (`LATE_START_SECONDS`), one sent whole late is cut short, and
        a streamed body is cut short with this part dropped. A later message goes nowhere,
        as a send on a connection gone does under the server's ASGI spec: from 2.4 it raises
        `OSError`; before, it is dropped (the server tells the app's next receive
        `http.disconnect` once the body is ended). Starlette's streaming responses stop either
        way."""
        if self.revoked:
            if self.aborted:
                raise Aborted("the session was revoked: the response was cut off")
            if _sends_raise(self._scope):
                raise ConnectionResetError("the session was revoked: the response was ended")
            return
        kind = message["type"]
        if kind == "http.response.start":
            if self._late() and await self._refused_now():
                return
            self._start = message
            await self._send(message)
            return
        if self._ended or (kind not in _BODY_PARTS and kind != "http.response.pathsend"):
            await self._send(message)
            return
        more = kind != "http.response.pathsend" and message.get("more_body", False)
        if not self._streaming:
            if more:
                self._streaming = True
                self._task = asyncio.current_task()
                self._gate.connections.add(self)
            elif self._late() and not self._vouched():
                await self._cut_short()  # the whole body, late, of a session revoked meanwhile
                return
        if self._streaming and (self._revoke_asked or not self._vouched()):
            await self._cut_short()
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
            await self._cut_short()

    def done(self) -> None:
        """Stop watching (the response is over)."""
        if self._streaming:
            self._gate.connections.discard(self)

    def _can_end(self) -> bool:
        """Whether the body can be ended where it stands: it did not declare its length (nor
        trailers), so an empty last part is a complete response."""
        start = self._start
        if start is None or start.get("trailers", False):
            return False
        return all(name.lower() != b"content-length" for name, _ in start.get("headers", ()))

    async def _cut_short(self) -> None:
        """From within the app's send: end the body, or abort the response."""
        if self._can_end():
            await self._end()
            return
        self._cut_off()
        raise Aborted("the session was revoked: the response was cut off")

    def _cut_off(self) -> None:
        self.revoked = self.aborted = self._ended = True
        self.done()

    async def _end(self) -> None:
        if self._ended:
            return
        self._ended = self.revoked = True
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

    def __bool__(self) -> bool:
        return bool(self._by_key)

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

    def cut_off_stale(self) -> int:
        """The gateway's revocations went stale (fail-closed): close every connection; how
        many were open."""
        every = {id(c): c for connections in self._by_key.values() for c in connections}
        for connection in every.values():
            connection.cut_off_stale()
        return len(every)
