"""Hostile session cookies and headers at the auth gateway: forged, empty, oversized, non-ASCII,
quoted and escaped, duplicated. Never a 500; a revoked session is refused however it is
written; what the request is admitted as is exactly an id it presented, and the id the app
behind would read from its own cookie or header is never a revoked one."""

from __future__ import annotations

import os
import random
from typing import Any

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway

SEED = int(os.environ.get("SESSIONS_FUZZ_SEED", "20261127"))
REQUESTS = int(os.environ.get("SESSIONS_FUZZ_REQUESTS", "3000"))
REVOKED = [f"revoked-{n:04d}-session" for n in range(20)]
LIVE = [f"live-{n:04d}-session" for n in range(20)]


async def echo(request: Request) -> JSONResponse:
    """What an app behind the gateway sees: the gateway's id and its own reading of the request."""
    return JSONResponse(
        {
            "state": getattr(request.state, "session_id", None),
            "cookie": request.cookies.get("sid"),
            "headers": [v.strip() for v in request.headers.getlist("x-session-id")],
        }
    )


def _gateway() -> SessionGateway:
    settings = GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme")
    gateway = SessionGateway.from_settings(settings)
    for session_id in REVOKED:
        gateway.table.add(session_id.encode(), 4_000_000_000)
    gateway.watcher.ready_event.set()
    return gateway


def _escaped(session_id: str, rng: random.Random) -> bytes:
    """The id as a quoted cookie value with some characters written as \\ooo or \\c escapes."""
    out = []
    for char in session_id:
        roll = rng.random()
        out.append(f"\\{ord(char):03o}" if roll < 0.3 else f"\\{char}" if roll < 0.4 else char)
    return b'"' + "".join(out).encode() + b'"'


def _value(rng: random.Random) -> bytes:
    """A session id as someone hostile might send it."""
    session_id = rng.choice(REVOKED + LIVE)
    return rng.choice(
        [
            lambda: session_id.encode(),
            lambda: f'"{session_id}"'.encode(),
            lambda: _escaped(session_id, rng),
            lambda: f"  {session_id}\t".encode(),
            lambda: b"",
            lambda: b'""',
            lambda: b"x" * rng.choice([128, 129, 4096, 65_536]),
            lambda: session_id.encode() + b"\xff",
            lambda: "sessión-ü".encode(),
            lambda: bytes(rng.randrange(256) for _ in range(rng.randrange(1, 40))),
            lambda: session_id.upper().encode(),
            lambda: session_id.encode() + b"; sid=" + rng.choice(LIVE).encode(),
            lambda: f"forged-{rng.getrandbits(64):x}".encode(),
        ]
    )()


def _headers(rng: random.Random) -> list[tuple[bytes, bytes]]:
    headers: list[tuple[bytes, bytes]] = []
    for _ in range(rng.randint(1, 4)):
        kind = rng.random()
        if kind < 0.6:
            cookies = [b"sid=" + _value(rng) for _ in range(rng.randint(1, 3))]
            if rng.random() < 0.3:
                cookies.insert(rng.randrange(len(cookies) + 1), b"theme=dark")
            headers.append((b"cookie", b"; ".join(cookies)))
        else:
            headers.append((b"x-session-id", _value(rng).replace(b"\r", b"").replace(b"\n", b"")))
    if rng.random() < 0.5:
        headers.append((b"accept", b"text/html"))
    return headers


async def _call(app: Any, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[str, Any]]:
    """One request straight through ASGI (no HTTP client normalising the headers)."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/me",
        "raw_path": b"/me",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 5000),
        "server": ("svc", 80),
    }
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(scope, receive, send)
    status = sent[0]["status"]
    body = b"".join(m.get("body", b"") for m in sent[1:])
    import json

    return status, json.loads(body) if status == 200 else {}


def _presented(headers: list[tuple[bytes, bytes]]) -> set[str]:
    """Every id a reader of these headers could take: raw, stripped, unquoted and unescaped."""
    from http.cookies import _unquote  # type: ignore[attr-defined]

    found = set()
    for name, value in headers:
        if name not in (b"cookie", b"x-session-id"):
            continue
        parts = value.split(b";") if name == b"cookie" else [b"sid=" + value]
        for part in parts:
            key, _, raw = part.partition(b"=")
            if key.strip() != b"sid":
                continue
            text = raw.decode("latin-1").strip()
            found |= {text, _unquote(text)}
    return found


async def test_hostile_session_cookies_and_headers_never_pass_a_revoked_session() -> None:
    rng = random.Random(SEED)
    gateway = _gateway()
    app = Starlette(routes=[Route("/{path:path}", echo)])
    gateway.install(app, manage_lifespan=False)
    statuses: dict[int, int] = {}
    for n in range(REQUESTS):
        headers = _headers(rng)
        status, seen = await _call(app, headers)
        statuses[status] = statuses.get(status, 0) + 1
        assert status in (200, 303, 401), (SEED, n, headers, status)
        if status != 200:
            continue
        assert seen["state"] is None or seen["state"] in _presented(headers), (SEED, n, seen)
        read_by_app = {seen["state"], seen["cookie"], *seen["headers"]}
        assert not read_by_app & set(REVOKED), (SEED, n, headers, seen)
    # every outcome was exercised
    assert statuses.get(200, 0) > REQUESTS // 10 and statuses.get(401, 0) > REQUESTS // 10
    assert statuses.get(303, 0) > REQUESTS // 10, statuses


async def test_a_revoked_session_stays_refused_whichever_way_it_is_written() -> None:
    gateway = _gateway()
    app = Starlette(routes=[Route("/{path:path}", echo)])
    gateway.install(app, manage_lifespan=False)
    revoked = REVOKED[0]
    escaped = "".join(f"\\{ord(c):03o}" for c in revoked)
    written = [
        [(b"cookie", f"sid={revoked}".encode())],
        [(b"cookie", f'sid="{revoked}"'.encode())],
        [(b"cookie", f'sid="{escaped}"'.encode())],
        [(b"cookie", f"sid={LIVE[0]}; sid={revoked}".encode())],
        [(b"cookie", f"sid={LIVE[0]}".encode()), (b"cookie", f"sid={revoked}".encode())],
        [(b"cookie", b"sid=" + b"p" * 65_536 + f"; sid={revoked}".encode())],
        [(b"x-session-id", f" {revoked} ".encode())],
        [(b"x-session-id", LIVE[0].encode()), (b"x-session-id", revoked.encode())],
        [(b"x-session-id", LIVE[0].encode()), (b"cookie", f"sid={revoked}".encode())],
    ]
    for headers in written:
        status, _ = await _call(app, headers)
        assert status == 401, headers
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        response = await client.get("/me", headers={"cookie": f"sid={LIVE[1]}"})
        assert response.json()["state"] == LIVE[1]
