"""The pure ASGI middleware that refuses revoked sessions; it runs on every request, so it is lean.

Per request: the request's tenant (the fixed tenant, or the host's resolver called on the
scope), one pass over the headers, for each candidate credential its handle (one SHA-256) and
a hash lookup of `<tenant_id>/<handle>` in the revocation table. A revoked session gets `303`
to the sign-in URL when the client accepts HTML (a browser navigation), else
`401 {"error": "session_revoked"}` (mobile and API clients alike); the session cookie is
cleared either way. Credentials are read as the app reads them (see `cookies`): every session
cookie of every Cookie header and every session header; a session under a scheme
(`Authorization: Bearer <id>`) or in a query parameter is held to one spelling (see
`credentials`), and any other is refused with `400 {"error": "malformed_credential"}`.

No tenant (the resolver answered None, or not a tenant id): a request carrying a credential is
refused like a revoked one, with `401 {"error": "tenant_unknown"}` (or the 303); one without
passes, signed out.

Fail closed: before the revocations topic has been read up to its start-up end offsets every
checked path answers `503 gateway_not_ready`; afterwards, once the watcher has not confirmed
it is current for `gateway_max_staleness_seconds`, requests carrying a session answer
`503 gateway_stale` (requests without one cannot be a revoked session and pass). With
`gateway_fail_open` both are admitted instead, logged as a warning at most every few seconds.

A well-formed credential that passes is handed to the app in `scope["state"]` (Starlette's
`request.state`): `session_credential` (the header's, else the parameter's last value, else a
WebSocket's subprotocol after the marker, else the cookie value `request.cookies` holds),
`session_handle` and `session_tenant`; a malformed cookie or bare session header (empty, not
printable ASCII) is treated as no session at all, which the application handles as signed out,
but one over 128 characters is refused (400 `malformed_credential`; a page: 303 to sign-in):
the gateway does not check it, and an app issuing such credentials served its revoked
sessions (since stop 70). Activity is reported only if the app, having authenticated the session
itself, sets `request.state.session_authenticated = True` (`AUTHENTICATED`) before it returns:
a credential the app does not know never becomes activity, so random cookies create nothing
downstream.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_gateway.activity import AUTHENTICATED, ActivityReporter
from auth_gateway.client_ip import ClientAddress
from auth_gateway.connections import Aborted, OpenConnections, WatchedResponse, WatchedSocket
from auth_gateway.cookies import (
    MAX_SESSION_ID,
    STR_WHITESPACE,
    TOO_MANY,
    CookieParser,
    printable_id,
)
from auth_gateway.credentials import (
    MALFORMED,
    MAX_CANDIDATES,
    MAX_READINGS,
    Presented,
    QueryParameter,
    SchemeHeader,
    Subprotocols,
)
from auth_gateway.credentials import TOO_MANY as TOO_MANY_READINGS
from auth_gateway.keys import TenantDirectory, TenantKeys
from auth_gateway.revocations import ENDED_NAMES, RevocationTable
from auth_gateway.settings import (
    GatewaySettings,
    checked_exempt_paths,
    checked_header_scheme,
    checked_query_param,
    checked_sign_in_url,
    checked_subprotocol_marker,
)
from auth_gateway.watcher import RevocationWatcher

log = logging.getLogger(__name__)

_WARN_EVERY_SECONDS = 5.0
_REVOKED_BODY = b'{"error":"session_revoked"}'
_NOT_READY_BODY = b'{"error":"gateway_not_ready"}'
_COOKIE_TOO_LARGE_BODY = b'{"error":"cookie_too_large"}'
_TOO_MANY_CREDENTIALS_BODY = b'{"error":"too_many_credentials"}'
_MALFORMED_CREDENTIAL_BODY = b'{"error":"malformed_credential"}'
_STALE_BODY = b'{"error":"gateway_stale"}'
_NO_TENANT_BODY = b'{"error":"tenant_unknown"}'


TenantResolver = Callable[[Scope], str | None]
"""The host's answer to "which tenant is this request for?" (None: none)."""


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
    @property
    def fixed_tenant(self) -> TenantKeys | None: ...
    @property
    def tenant_resolver(self) -> TenantResolver | None: ...
    @property
    def refused(self) -> dict[str, int]: ...

    admitted_unverified: int

    @property
    def connections(self) -> OpenConnections: ...
    async def start(self) -> None: ...
    async def stop(self) -> None: ...


NOTED_PER_FLUSH = 2_000
"""The most requests and connections served `_note_serving` notes a flush (0.5 s): 100,000
held WebSockets are noted within 25 s, each flush holding the event loop a few milliseconds."""


class GatewayMiddleware:
    """ASGI middleware enforcing `gateway`'s revocations; optionally runs it in the lifespan."""

    def __init__(self, app: ASGIApp, gateway: Gateway, manage_lifespan: bool = True) -> None:
        settings = gateway.settings
        self.app = app
        self._gateway = gateway
        self._manage_lifespan = manage_lifespan
        self.table = gateway.table
        self._note = gateway.activity.note
        self._serving: dict[int, tuple[bytes, Scope]] = {}
        """Requests and connections served with a credential, by id(scope): their activity is
        noted at each flush of the reporter while the app has taken the session."""
        self._due = gateway.activity.due
        self._serving_next = 0  # where `_note_serving` goes on at the next flush
        gateway.activity.add_source(self._note_serving)
        self._watcher = gateway.watcher
        self.now = gateway.watcher.monotonic
        self._fixed = gateway.fixed_tenant
        self._resolve: TenantResolver = gateway.tenant_resolver or _no_tenant
        self._tenants = TenantDirectory()
        self._fail_open = settings.gateway_fail_open
        self._header = settings.gateway_header_name.lower().encode("latin-1")
        scheme = checked_header_scheme(settings.gateway_header_name, settings.gateway_header_scheme)
        self._scheme = SchemeHeader(scheme) if scheme is not None else None
        param = checked_query_param(settings.gateway_query_param)
        self._query = QueryParameter(param, scheme) if param is not None else None
        marker = checked_subprotocol_marker(settings.gateway_subprotocol_marker)
        self._subprotocols = Subprotocols(marker, scheme) if marker is not None else None
        self._extras = self._query is not None or self._subprotocols is not None
        self._cookies = CookieParser(settings.gateway_cookie_name)
        self._max_cookie_bytes = settings.gateway_max_cookie_bytes
        trusted = settings.gateway_trusted_proxies
        self._client_address = gateway.client_addresses if trusted else None
        exempt = checked_exempt_paths(settings.gateway_exempt_paths)
        self._exempt_exact = frozenset(p for p in exempt if not p.endswith("/"))
        self._exempt_prefixes = tuple(p for p in exempt if p.endswith("/"))
        sign_in = checked_sign_in_url(settings.gateway_sign_in_url)
        if sign_in.startswith("/"):
            self._exempt_exact |= {sign_in.split("?", 1)[0]}
        self._location = sign_in.encode("latin-1")
        self._clear_cookie = (
            settings.gateway_cookie_name.encode("latin-1")
            + b"=; Max-Age=0; Path=/; HttpOnly; SameSite=Lax"
        )
        self._unverified = 0
        self._warned_at = 0.0
        self._refused = gateway.refused  # counted per reason, read by the metrics collector
        self.connections = gateway.connections

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
        checked_at = self.now()
        current = checked_at <= self._watcher.current_until
        if not current and not self._watcher.ready:
            if not self._fail_open:
                self._refused["not_ready"] += 1
                await self._refuse(scope, send, 503, _NOT_READY_BODY, [(b"retry-after", b"1")])
                return
            self._warn_unverified("before the revocations topic was read")
        keys = self._fixed
        if keys is None:
            keys = self._tenants.get(self._resolve(scope))  # None: no tenant to check against
        # Every candidate credential in the request is checked, read as the app will read it,
        # so neither a second header or cookie nor another spelling of the same credential
        # can carry a revoked session past the check to an app that reads its own.
        table = self.table
        carried: list[bytes] = []  # the key of every credential (watched if served long)
        header_id = cookie_id = header_key = cookie_key = revoked_key = None
        revoked = has_cookie = has_header = header_seen = wants_html = False
        cookie_bytes = headers = readings = 0
        malformed = unchecked = unchecked_cookie = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                cookie_bytes += len(value)
                if cookie_bytes > self._max_cookie_bytes:
                    # parsing costs ~0.2 s a MiB of the event loop every request waits on;
                    # unchecked, it is not vouched for: refused, never passed on
                    self._refused["cookie_too_large"] += 1
                    await self._refuse(scope, send, 431, _COOKIE_TOO_LARGE_BODY, [])
                    return
                cookie = self._cookies.parse(value)
                if cookie is TOO_MANY:
                    self._refused["cookie_too_large"] += 1
                    await self._refuse(scope, send, 431, _COOKIE_TOO_LARGE_BODY, [])
                    return
                if cookie.present:
                    unchecked_cookie = unchecked_cookie or cookie.unchecked
                    key = None
                    for candidate in cookie.candidates:
                        has_cookie = True
                        if keys is not None:
                            key = keys.key(candidate)
                            carried.append(key)
                            if key in table:
                                revoked = True
                                revoked_key = key
                    cookie_id = cookie.session_id  # request.cookies: the last one wins
                    cookie_key = key if cookie_id is not None else None  # the last candidate's
            elif name == self._header:
                headers += 1
                if headers > MAX_CANDIDATES:
                    await self._refuse_too_many(scope, send)
                    return
                if self._scheme is not None:
                    presented = self._scheme.read(value)
                    if presented is MALFORMED:
                        malformed = True  # refused after the revocations are looked up
                        continue
                    readings += len(presented.candidates)
                    if readings > MAX_READINGS:
                        await self._refuse_too_many(scope, send)
                        return
                    first = len(carried)  # the key of the id the app reads comes first
                    if keys is not None and (found := self._look_up(keys, presented, carried)):
                        revoked = True
                        revoked_key = found
                    has_header = has_header or presented.present
                    if not header_seen:  # request.headers.get: the first one
                        header_seen = True
                        header_id = presented.session_id
                        if keys is not None and header_id is not None:
                            header_key = carried[first]
                    continue
                candidate = value.strip(STR_WHITESPACE)
                key = None
                if len(candidate) > MAX_SESSION_ID:
                    unchecked = True  # no credential the gateway checks: not vouched for
                elif candidate:
                    has_header = True
                    if keys is not None:
                        key = keys.key(candidate)
                        carried.append(key)
                        if key in table:
                            revoked = True
                            revoked_key = key
                if not header_seen:  # request.headers.get: the first one
                    header_seen = True
                    header_id = printable_id(candidate)
                    header_key = key
            elif name == b"accept":
                wants_html = b"text/html" in value
        # The query parameter, then a WebSocket's subprotocols, each when configured: the
        # first of them with an id is the one the app reads, after the header's.
        extra_id = extra_key = None
        has_extra = False
        if self._extras:
            for presented in self._extra_readings(scope):
                if presented is TOO_MANY_READINGS:
                    await self._refuse_too_many(scope, send)
                    return
                if presented is MALFORMED:
                    malformed = True  # refused after the revocations are looked up
                    continue
                readings += len(presented.candidates)
                if readings > MAX_READINGS:
                    await self._refuse_too_many(scope, send)
                    return
                first = len(carried)  # the key of the id the app reads comes first
                if keys is not None and (found := self._look_up(keys, presented, carried)):
                    revoked = True
                    revoked_key = found
                if presented.present:
                    has_extra = True
                    if extra_id is None and presented.session_id is not None:
                        extra_id = presented.session_id
                        extra_key = carried[first] if keys is not None else None
        if revoked:
            self._refused["revoked"] += 1
            ended = self._ended_location(revoked_key) if wants_html else None
            await self._reject(scope, send, wants_html, has_cookie, _REVOKED_BODY, ended)
            return
        if malformed:  # after a revocation, which the client is told of first
            await self._refuse_malformed(scope, send)
            return
        if unchecked or unchecked_cookie:
            # A value too long to be a credential the gateway checks (contract: 1-128
            # characters). Passed on as no session, an app issuing longer credentials served
            # its revoked sessions (a review, stop 70). A page: to sign-in, the cookie cleared.
            self._refused["malformed_credential"] += 1
            if wants_html and scope["type"] == "http":
                await self._reject(scope, send, True, has_cookie or unchecked_cookie, b"")
            else:
                await self._refuse(scope, send, 400, _MALFORMED_CREDENTIAL_BODY, [])
            return
        presents = has_cookie or has_header or has_extra
        if keys is None:
            if presents:
                # No tenant, so no revocation to check the credential against: not vouched for.
                self._refused["tenant_unknown"] += 1
                await self._reject(scope, send, wants_html, has_cookie, _NO_TENANT_BODY)
                return
            await self.app(scope, receive, send)
            return
        if not current and presents and self._watcher.ready:
            # Ready once, but not confirmed current within the bound: revocations made
            # since may be missing, so a session cannot be vouched for.
            if not self._fail_open:
                self._refused["stale"] += 1
                await self._refuse(scope, send, 503, _STALE_BODY, [(b"retry-after", b"1")])
                return
            self._warn_unverified("while the revocations read are stale")
        # The credential the app reads: the first header's when well-formed, else the
        # parameter's (its last value), else the subprotocol's, else the last session
        # cookie's (a well-formed cookie value is always the last candidate checked).
        credential: str | None = header_id
        session_key: bytes | None = header_key
        if credential is None:
            credential, session_key = extra_id, extra_key
        if credential is None:
            credential, session_key = cookie_id, cookie_key
        if credential is None or session_key is None:
            if not carried:
                await self.app(scope, receive, send)
            elif scope["type"] == "websocket":
                await self._serve_socket(scope, receive, send, tuple(carried))
            else:
                await self._serve_response(scope, receive, send, tuple(carried), checked_at)
            return
        state = scope.get("state")
        if state is None:
            scope["state"] = state = {}
        state["session_credential"] = credential
        state["session_handle"] = keys.handle(session_key)
        state["session_tenant"] = keys.tenant_id
        state[AUTHENTICATED] = False  # only the app says it authenticated the session
        # Activity while it is served too (a WebSocket, a stream: `_note_serving`), and when
        # the app raised once it had taken the session (its platform saw a request)
        serving, ident = self._serving, id(scope)
        serving[ident] = (session_key, scope)
        served = False
        try:
            if scope["type"] == "websocket":
                served = await self._serve_socket(scope, receive, send, tuple(carried))
            else:
                served = await self._serve_response(
                    scope, receive, send, tuple(carried), checked_at
                )
        finally:
            serving.pop(ident, None)
            # not for a session revoked meanwhile
            if state.get(AUTHENTICATED) is True and (served or not self._revoked(carried)):
                self._note(session_key, self._address(scope))

    def _address(self, scope: Scope) -> str | None:
        """The client's address, as reported with its activity."""
        client = scope.get("client")
        address = client[0] if client else None
        if self._client_address is not None:
            address = self._client_address.of(address, scope["headers"])
        return address

    def _note_serving(self) -> None:
        """Note the activity of each session served now that the app has taken: at most
        `NOTED_PER_FLUSH` a flush, going on where the flush before stopped, so every held
        connection has its turn (from the start each time, the first ones, due again once
        the debounce map had evicted them, took every turn past its bound: a review)."""
        due, noted = self._due, 0
        held = tuple(self._serving.values())
        count = len(held)
        start = self._serving_next % count if count else 0
        for step in range(count):
            key, scope = held[(start + step) % count]
            # the debounce first: the address costs (trusted proxies: a header parsed), and
            # every flush asked it of every connection, 1 s of the event loop each half
            # second for 100,000 held connections (a review, stop 70)
            if due(key) and scope["state"].get(AUTHENTICATED) is True:
                self._note(key, self._address(scope))
                noted += 1
                if noted == NOTED_PER_FLUSH:
                    self._serving_next = start + step + 1
                    return
        self._serving_next = 0

    def _revoked(self, keys: Iterable[bytes]) -> bool:
        table = self.table
        return any(key in table for key in keys)

    async def _serve_socket(
        self, scope: Scope, receive: Receive, send: Send, carried: tuple[bytes, ...]
    ) -> bool:
        """The app, for a WebSocket: checked once above, it lives on, so it is watched under
        every credential it carried (`auth_gateway.connections`) and closed when one is
        revoked. Whether it was served to its end without that."""
        socket = WatchedSocket(carried, self.table, receive, send, self.vouches)
        self.connections.add(socket)
        try:
            await self.app(scope, socket.receive, socket.send)
        finally:
            self.connections.discard(socket)
        return not socket.revoked

    async def _serve_response(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        carried: tuple[bytes, ...],
        checked_at: float,
    ) -> bool:
        """The app, for an HTTP request carrying a credential: its body, if it arrives late,
        and its response, if it starts or is sent whole late, are checked again, and a streamed
        response body is watched and cut short when a credential is revoked
        (`auth_gateway.connections`). Whether it was served
        without that. What the app raises because of the cut (the send that raised, the
        cancellation of an idle response that declared its length) stays here: the server
        then closes a response left incomplete, and logs no app failure for it."""
        response = WatchedResponse(self, scope, carried, checked_at, send, receive)
        try:
            await self.app(scope, response.receive, response.send)
        except asyncio.CancelledError:
            if not response.aborted:
                raise
            task = asyncio.current_task()
            if task is not None:
                task.uncancel()
        except (Aborted, OSError, ClientDisconnect):
            if not response.revoked:
                raise
        finally:
            response.done()
        return not response.revoked

    def _extra_readings(self, scope: Scope) -> Iterator[Presented]:
        """What the query parameter, then a WebSocket's subprotocols, present (as configured)."""
        if self._query is not None:
            yield self._query.read(scope.get("query_string") or b"")
        if self._subprotocols is not None and scope["type"] == "websocket":
            yield self._subprotocols.read(scope)

    def _look_up(self, keys: TenantKeys, presented: Presented, carried: list[bytes]) -> bytes:
        """Each of `presented`'s candidates looked up, its key added to `carried`: the key of
        a revoked one, or b"" if none is."""
        table = self.table
        found = b""
        for candidate in presented.candidates:
            key = keys.key(candidate)
            carried.append(key)
            if key in table:
                found = key
        return found

    async def _refuse_too_many(self, scope: Scope, send: Send) -> None:
        """A request presenting more session headers, or values of the session parameter,
        than are looked up."""
        self._refused["too_many_credentials"] += 1
        await self._refuse(scope, send, 400, _TOO_MANY_CREDENTIALS_BODY, [])

    async def _refuse_malformed(self, scope: Scope, send: Send) -> None:
        """A session under the scheme or in the parameter not in its one spelling."""
        self._refused["malformed_credential"] += 1
        await self._refuse(scope, send, 400, _MALFORMED_CREDENTIAL_BODY, [])

    def vouches(self) -> bool:
        """Whether a session can be vouched for now: the revocations confirmed current within
        the bound, or fail-open. A connection served past its check asks at each message."""
        return self._fail_open or self.now() <= self._watcher.current_until

    async def refuse_stale(self, scope: Scope, send: Send) -> None:
        """Answer an HTTP request as one the gateway cannot vouch for now, as at its check."""
        self._refused["stale"] += 1
        await self._refuse(scope, send, 503, _STALE_BODY, [(b"retry-after", b"1")])

    async def refuse_revoked(self, scope: Scope, send: Send, key: bytes) -> None:
        """Answer an HTTP request of a revoked session, as at its check: 401, or for a page a
        303 to sign-in saying why; the session cookie cleared if the request had one."""
        self._refused["revoked"] += 1
        wants_html = has_cookie = False
        for name, value in scope["headers"]:
            if name == b"cookie":
                has_cookie = has_cookie or self._cookies.parse(value).present
            elif name == b"accept":
                wants_html = b"text/html" in value
        ended = self._ended_location(key) if wants_html else None
        await self._reject(scope, send, wants_html, has_cookie, _REVOKED_BODY, ended)

    def _ended_location(self, key: bytes | None) -> bytes | None:
        """The sign-in URL saying why the session ended (`?ended=admin`, ...), when known."""
        why = self.table.why(key) if key is not None else None
        name = ENDED_NAMES.get(why or 0)
        if name is None:
            return None
        return self._location + (b"&" if b"?" in self._location else b"?") + b"ended=" + name

    async def _reject(
        self,
        scope: Scope,
        send: Send,
        wants_html: bool,
        from_cookie: bool,
        body: bytes,
        location: bytes | None = None,
    ) -> None:
        extra = [(b"set-cookie", self._clear_cookie)] if from_cookie else []
        if wants_html and scope["type"] == "http":
            extra.append((b"location", location or self._location))
            await self._refuse(scope, send, 303, b"", extra)
        else:
            await self._refuse(scope, send, 401, body, extra)

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
        self._gateway.admitted_unverified += 1
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
        """The app's lifespan, with the gateway started at its startup and stopped after its
        shutdown. An app that does not speak the lifespan protocol (it raises, or returns,
        before reading the startup: Django's `ASGIHandler` and many hand-written apps do)
        gets it answered here, so the gateway starts all the same. Before stop 66 it never
        started for such an app: the server logged "lifespan unsupported" at info level, and
        every checked request was answered 503 for good, or, with fail-open set to get past
        that, admitted against an empty table (a review as an attacker)."""
        gateway = self._gateway
        started = False

        async def receive_and_start() -> Message:
            nonlocal started
            message = await receive()
            if message["type"] == "lifespan.startup":
                started = True
                await gateway.start()
            return message

        async def stop_and_send(message: Message) -> None:
            if message["type"] in ("lifespan.shutdown.complete", "lifespan.shutdown.failed"):
                await gateway.stop()
            await send(message)

        try:
            await self.app(scope, receive_and_start, stop_and_send)
        except Exception as exc:
            if started:
                raise
            log.info("the app does not speak ASGI lifespan (%r): the gateway answers it", exc)
        else:
            if started:
                return
            log.info("the app does not speak ASGI lifespan: the gateway answers it")
        await self._own_lifespan(receive, send)

    async def _own_lifespan(self, receive: Receive, send: Send) -> None:
        """The lifespan protocol answered for an app that does not speak it: the gateway
        started at the startup, stopped at the shutdown."""
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self._gateway.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self._gateway.stop()
                await send({"type": "lifespan.shutdown.complete"})
                return


def _no_tenant(scope: Scope) -> str | None:
    return None
