"""The client address of a request: the connection's peer, unless it is a trusted proxy.

`X-Forwarded-For` is a list any client can start: `curl -H 'X-Forwarded-For: 6.6.6.6'` puts
whatever it likes on the left, and each proxy appends the address it was connected from on
the right. Only the part appended by proxies we trust is true, so the client is the
right-most address that is not itself a trusted proxy, read only when the peer is one. With
no trusted proxies (the default) the header is never read.

This needs the real peer in the ASGI scope: the server must not rewrite `client` from the
headers itself (uvicorn: `--no-proxy-headers`, or `--forwarded-allow-ips ''`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_CACHED = 4096


def parse_address(text: str) -> IPAddress | None:
    """An address as proxies write it (`1.2.3.4`, `1.2.3.4:80`, `[::1]:80`, `::1`), or None.

    An IPv4 address mapped into IPv6 (`::ffff:10.0.0.1`, how a dual-stack socket reports an
    IPv4 peer) is taken as the IPv4 address.
    """
    text = text.strip()
    if text.startswith("["):
        text = text[1 : text.find("]")] if "]" in text else ""
    elif text.count(":") == 1:
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class ClientAddress:
    """Finds a request's client address given the trusted proxies' networks."""

    def __init__(self, trusted: Sequence[IPNetwork], header: bytes = b"x-forwarded-for") -> None:
        self._trusted = tuple(trusted)
        self._header = header
        self._cache: dict[tuple[str, tuple[bytes, ...]], str | None] = {}

    def is_trusted(self, address: IPAddress) -> bool:
        """Whether `address` is one of the trusted proxies."""
        return any(address in network for network in self._trusted)

    def of(self, peer: str | None, headers: Iterable[tuple[bytes, bytes]]) -> str | None:
        """The client address of a request from `peer` with these (raw ASGI) headers."""
        if peer is None or not self._trusted:
            return peer
        forwarded = tuple(value for name, value in headers if name == self._header)
        key = (peer, forwarded)
        if key in self._cache:
            return self._cache[key]
        client = self._resolve(peer, forwarded)
        if len(self._cache) >= _CACHED:
            self._cache.clear()  # crude, but bounded and O(1) amortised
        self._cache[key] = client
        return client

    def _resolve(self, peer: str, forwarded: tuple[bytes, ...]) -> str | None:
        address = parse_address(peer)
        if address is None or not self.is_trusted(address):
            return peer
        # Several X-Forwarded-For headers are one list, in order (RFC 9110, 5.3).
        hops = [h for h in b",".join(forwarded).decode("latin-1").split(",") if h.strip()]
        for hop in reversed(hops):
            address = parse_address(hop)
            if address is None:
                return None  # a trusted proxy wrote something that is not an address
            if not self.is_trusted(address):
                return str(address)
        # Every hop is a trusted proxy: the request started at the left-most one.
        return str(address)
