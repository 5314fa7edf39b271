"""The pure ASGI middleware that refuses revoked sessions; it runs on every request, so it is lean.

Per request: one pass over the headers, a hash lookup in the revocation table, and a
debounce check for activity. A revoked session gets `303` to the sign-in URL when the client
accepts HTML (a browser navigation), else `401 {"error": "session_revoked"}` (mobile and API
clients alike); the session cookie is cleared either way. Ids are read as the app reads
them (see `cookies`): every session cookie of every Cookie header and every session header.

Fail closed: before the revocations topic has been read up to its start-up end offsets every
checked path answers `503 gateway_not_ready`; afterwards, once the watcher has not confirmed
it is current for `gateway_max_staleness_seconds`, requests carrying a session answer
`503 gateway_stale` (requests without one cannot be a revoked session and pass). With
`gateway_fail_open` both are admitted instead, logged as a warning at most every few seconds.
Well-formed session ids that pass are put in `scope["state"]["session_id"]` (Starlette's
`request.state.session_id`: the header's, else the cookie value `request.cookies` holds);
malformed ones (empty, over 128 characters, not printable ASCII) are treated as no session
at all, which the application then handles as signed out.
"""

from __future__ import annotations

import logging
import time
from typing import Protocol

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_gateway.activity import ActivityReporter
from auth_gateway.client_ip import ClientAddress
from auth_gateway.cookies import MAX_SESSION_ID, STR_WHITESPACE, CookieParser, printable_id
from auth_gateway.revocations import RevocationTable
from auth_gateway.settings import GatewaySettings
from auth_gateway.watcher import RevocationWatcher

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 5.0
_REVOKED_BODY = b'{"error":"session_revoked"}'
_NOT_READY_BODY = b'{"error":"gateway_not_ready"}'
_STALE_BODY = b'{"error":"gateway_stale"}'


class Gateway(Protocol):
    """What the middleware consults and, managing the lifespan, starts and stops.

    `SessionGateway` is the one implementation; naming only this keeps the dependency one
    way (the gateway builds the middleware, the middleware never imports the gateway).
    """

    @property
    def settings(self) -> GatewaySettings: ...
    @property
    def table(self) -> RevocationTable: ...
    @property
    def watcher(self) -> RevocationWatcher: ...
    @property
    def activity(self) -> ActivityReporter: ...
    @property
    def client_addresses(self) -> ClientAddress: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


class GatewayMiddleware:
    """ASGI middleware enforcing `gateway`'s revocations; optionally runs it in the lifespan."""

    def __init__(self, app: ASGIApp, gateway: Gateway, manage_lifespan: bool = True) -> None:
        settings = gateway.settings
        self.app = app
        self._gateway = gateway
        self._manage_lifespan = manage_lifespan
        self._table = gateway.table
        self._note = gateway.activity.note
        self._watcher = gateway.watcher
        self._now = gateway.watcher.monotonic
        self._fail_open = settings.gateway_fail_open
        self._header = settings.gateway_header_name.lower().encode("latin-1")
        self._cookies = CookieParser(settings.gateway_cookie_name)
        trusted = settings.gateway_trusted_proxies
        self._client_address = gateway.client_addresses if trusted else None
        exempt = settings.gateway_exempt_paths
        self._exempt_exact = frozenset(p for p in exempt if not p.endswith("/"))
        self._exempt_prefixes = tuple(p for p in exempt if p.endswith("/"))
        sign_in = settings.gateway_sign_in_url
        if sign_in.startswith("/"):
            self._exempt_exact |= {sign_in.split("?", 1)[0]}
        self._location = sign_in.encode("latin-1")
        self._clear_cookie = (
            settings.gateway_cookie_name.encode("latin-1")
            + b"=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        )
        self._unverified = 0
        self._warned_at = 0.0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind != "http" and kind != "websocket":
            if kind == "lifespan" and self._manage_lifespan:
                await self._lifespan(scope, receive, send)
            else:
                await self.app(scope, receive, send)
            return
        path = scope["path"]
        if path in self._exempt_exact or path.startswith(self._exempt_prefixes):
            await self.app(scope, receive, send)
            return
        current = self._now() <= self._watcher.current_until
        if not current and not self._watcher.ready:
            if not self._fail_open:
                await self._refuse(scope, send, 503, _NOT_READY_BODY, [(b"retry-after", b"1")])
                return
            self._warn_unverified("before the revocations topic was read")
        # Every candidate id in the request is checked, read as the app will read it, so
        # neither a second header or cookie nor another spelling of the same id can carry a
        # revoked session past the check to an app that reads its own cookie or header.
        table = self._table
        header_id = cookie_id = None
        revoked = has_cookie = has_header = header_seen = wants_html = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie = self._cookies.parse(value)
                if cookie.present:
                    for candidate in cookie.candidates:
                        has_cookie = True
                        if candidate in table:
                            revoked = True
                    cookie_id = cookie.session_id  # request.cookies: the last one wins
            elif name == self._header:
                candidate = value.strip(STR_WHITESPACE)
                if 0 < len(candidate) <= MAX_SESSION_ID:
                    has_header = True
                    if candidate in table:
                        revoked = True
                if not header_seen:  # request.headers.get: the first one
                    header_seen = True
                    header_id = printable_id(candidate)
            elif name == b"accept":
                wants_html = b"text/html" in value
        if revoked:
            await self._reject(scope, send, wants_html, has_cookie)
            return
        if not current and (has_cookie or has_header) and self._watcher.ready:
            # Ready once, but not confirmed current within the bound: revocations made
            # since may be missing, so a session cannot be vouched for.
            if not self._fail_open:
                await self._refuse(scope, send, 503, _STALE_BODY, [(b"retry-after", b"1")])
                return
            self._warn_unverified("while the revocations read are stale")
        session_id = header_id or cookie_id
        if session_id is not None:
            client = scope.get("client")
            address = client[0] if client else None
            if self._client_address is not None:
                address = self._client_address.of(address, scope["headers"])
            self._note(session_id, address)
            state = scope.get("state")
            if state is None:
                scope["state"] = state = {}
            state["session_id"] = session_id
        await self.app(scope, receive, send)

    async def _reject(self, scope: Scope, send: Send, wants_html: bool, from_cookie: bool) -> None:
        extra = [(b"set-cookie", self._clear_cookie)] if from_cookie else []
        if wants_html and scope["type"] == "http":
            extra.append((b"location", self._location))
            await self._refuse(scope, send, 303, b"", extra)
        else:
            await self._refuse(scope, send, 401, _REVOKED_BODY, extra)

    async def _refuse(
        self, scope: Scope, send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]
    ) -> None:
        if scope["type"] == "websocket":
            # Closing before accepting makes the server answer the handshake with 403.
            await send({"type": "websocket.close", "code": 1008})
            return
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
            (b"cache-control", b"no-store"),
            *extra,
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    def _warn_unverified(self, why: str) -> None:
        self._unverified += 1
        now = time.monotonic()
        if now - self._warned_at >= _WARN_EVERY_SECONDS:
            log.warning(
                "FAIL-OPEN: admitted %d request(s) %s (%.1f s since confirmed current); "
                "revoked sessions may get through",
                self._unverified,
                why,
                self._watcher.staleness_seconds(),
            )
            self._warned_at = now
            self._unverified = 0

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        gateway = self._gateway

        async def receive_and_start() -> Message:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await gateway.start()
            return message

        async def stop_and_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await gateway.stop()
            await send(message)

        await self.app(scope, receive_and_start, stop_and_send)
