"""The client address the gateway reports: the peer, unless the peer is a trusted proxy."""

from __future__ import annotations

import ipaddress
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.client_ip import ClientAddress, parse_address

PROXIES = [ipaddress.ip_network(n) for n in ("10.0.0.0/8", "192.0.2.1", "2001:db8::/32")]


def xff(*values: str) -> list[tuple[bytes, bytes]]:
    return [(b"x-forwarded-for", v.encode()) for v in values]


@pytest.mark.parametrize(
    ("peer", "headers", "client"),
    [
        # not from a trusted proxy: the header is whatever the client wrote, never read
        ("198.51.100.4", xff("6.6.6.6"), "198.51.100.4"),
        ("127.0.0.1", xff("6.6.6.6"), "127.0.0.1"),
        # from a trusted proxy: the address it appended
        ("192.0.2.1", xff("203.0.113.7"), "203.0.113.7"),
        # a spoofed chain through one trusted proxy: the proxy appended the real one
        ("192.0.2.1", xff("6.6.6.6, 203.0.113.7"), "203.0.113.7"),
        ("192.0.2.1", xff("6.6.6.6", "203.0.113.7"), "203.0.113.7"),  # two headers, one list
        # through two trusted proxies
        ("192.0.2.1", xff("6.6.6.6, 203.0.113.7, 10.1.2.3"), "203.0.113.7"),
        # a spoofed trusted address on the left does not help: the right-most untrusted wins
        ("192.0.2.1", xff("10.9.9.9, 203.0.113.7"), "203.0.113.7"),
        # every hop trusted: the request began at the left-most
        ("192.0.2.1", xff("10.0.0.5, 10.0.0.6"), "10.0.0.5"),
        ("192.0.2.1", [], "192.0.2.1"),  # a trusted peer forwarding nothing is the client
        ("192.0.2.1", xff("not-an-address"), None),  # unknown rather than made up
        ("192.0.2.1", xff("6.6.6.6, garbage, 10.0.0.1"), None),
        ("192.0.2.1", xff("203.0.113.7:4711"), "203.0.113.7"),
        ("192.0.2.1", xff("[2001:db9::1]:443"), "2001:db9::1"),
        ("2001:db8::9", xff("2001:db9::1"), "2001:db9::1"),
        ("::ffff:192.0.2.1", xff("203.0.113.7"), "203.0.113.7"),  # IPv4 peer, dual-stack
        (None, xff("203.0.113.7"), None),
    ],
)
def test_client_address(peer: str | None, headers: list[tuple[bytes, bytes]], client: str) -> None:
    finder = ClientAddress(PROXIES)
    assert finder.of(peer, headers) == client
    assert finder.of(peer, headers) == client  # the cached answer is the same


def test_no_trusted_proxies_means_the_header_is_never_read() -> None:
    assert ClientAddress([]).of("127.0.0.1", xff("6.6.6.6")) == "127.0.0.1"


def test_parse_address() -> None:
    assert str(parse_address(" 203.0.113.7 ")) == "203.0.113.7"
    assert str(parse_address("::ffff:10.0.0.1")) == "10.0.0.1"
    assert parse_address("unknown") is None
    assert parse_address("[::1") is None
    assert parse_address("") is None


def test_the_cache_is_bounded() -> None:
    finder = ClientAddress(PROXIES)
    for n in range(10_000):
        finder.of("192.0.2.1", xff(f"203.0.{n // 256}.{n % 256}"))
    assert len(finder._cache) <= 4096


async def ok(request: Request) -> PlainTextResponse:
    request.state.session_authenticated = True  # the app recognised the session
    return PlainTextResponse("ok")


def gateway_with(**settings: Any) -> tuple[SessionGateway, Starlette]:
    gateway = SessionGateway.from_settings(
        GatewaySettings(KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:1", gateway_tenant_id="acme", **settings)
    )
    gateway.watcher.mark_current()
    app = Starlette(routes=[Route("/{path:path}", ok)])
    gateway.install(app, manage_lifespan=False)
    return gateway, app


@pytest.mark.parametrize(
    ("trusted", "peer", "forwarded", "reported"),
    [
        ([], "127.0.0.1", "6.6.6.6", "127.0.0.1"),  # the default: the connection's peer
        (["127.0.0.1"], "127.0.0.1", "6.6.6.6, 203.0.113.7", "203.0.113.7"),
        (["127.0.0.1"], "198.51.100.4", "6.6.6.6", "198.51.100.4"),
    ],
)
async def test_activity_carries_the_client_address(
    trusted: list[str], peer: str, forwarded: str, reported: str
) -> None:
    gateway, app = gateway_with(gateway_trusted_proxies=trusted)
    transport = httpx.ASGITransport(app=app, client=(peer, 5000))
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        response = await client.get(
            "/home", headers={"x-session-id": "live-1", "x-forwarded-for": forwarded}
        )
    assert response.status_code == 200
    assert [ip for _, ip, _ in gateway.activity._pending] == [reported]


def test_trusted_proxies_are_addresses_or_networks() -> None:
    settings = GatewaySettings(
        gateway_tenant_id="acme", gateway_trusted_proxies=["10.0.0.0/8", "192.0.2.1", "::1"]
    )
    assert [str(n) for n in settings.gateway_trusted_proxies] == [
        "10.0.0.0/8",
        "192.0.2.1/32",
        "::1/128",
    ]
    with pytest.raises(ValueError, match="network"):
        GatewaySettings(gateway_tenant_id="acme", gateway_trusted_proxies=["proxy.internal"])
