"""IP addresses as 16 sortable bytes, so a CIDR filter is a byte range on an indexed column.

The registry stores `sessions.ip_packed = pack_ip(ip_address)`; the admin API turns a CIDR
filter into `network_bounds(network)`. Both sides use these two functions, nothing else.

The text an event carries is `contract_ip(text)`: one spelling per address on every Python
version, and never a zone id (`fe80::1%eth0`), which names an interface of the host that saw the
address, can be any length and hold any character (NUL included), and so cannot be stored
unchanged. Producers that read a socket's peer use `reported_ip`, which drops the zone.
"""

from __future__ import annotations

import ipaddress
import re

IPv4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
"""`::ffff:0:0/96`: an IPv4 address a.b.c.d is stored as ::ffff:a.b.c.d."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_IP_TEXT = len("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")
"""The longest `contract_ip` text (39); the read model's address columns hold 45."""


_DECIMAL_OCTET = r"(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_CANONICAL_IPV4 = re.compile(rf"{_DECIMAL_OCTET}(\.{_DECIMAL_OCTET}){{3}}", re.ASCII)
"""Dotted-quad IPv4 text as the contract spells it (0-255, no leading zeros): every match is
read by `ipaddress` and printed back unchanged, so the hot paths skip the parse."""


def ip_text(address: Address) -> str:
    """The contract's spelling of an address: RFC 5952 (lower case, longest zero run `::`), an
    IPv4-mapped one as `::ffff:a.b.c.d` (RFC 5952, 5) whatever Python prints (3.13 does so,
    3.11 printed `::ffff:102:304`)."""
    if isinstance(address, ipaddress.IPv6Address):
        mapped = address.ipv4_mapped
        if mapped is not None:
            return f"::ffff:{mapped}"
    return str(address)


def contract_ip(text: str) -> str:
    """The contract's text of an IPv4 or IPv6 address; ValueError (with the reason) if it is
    not one, or carries a zone id."""
    if type(text) is str and _CANONICAL_IPV4.fullmatch(text):
        return text  # ip_text(ip_address(text)) == text
    if "%" in text:
        raise ValueError(
            "an IPv6 zone id (the part from '%') is not accepted: it names an interface of the "
            "host that saw the address and cannot be stored unchanged; send the address alone"
        )
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"{text!r} is not an IPv4 or IPv6 address") from None
    return ip_text(address)


def reported_ip(text: str | None) -> str | None:
    """A peer's address as an event may carry it (zone id dropped), or None if it is not one."""
    if not text:
        return None
    try:
        return contract_ip(text.partition("%")[0])
    except ValueError:
        return None


def pack_ip(address: str) -> bytes:
    """The 16-byte form of an IPv4 or IPv6 address (IPv4 mapped into IPv6); ValueError if bad."""
    if type(address) is str and _CANONICAL_IPV4.fullmatch(address):
        return IPv4_MAPPED_PREFIX + bytes(map(int, address.split(".")))
    parsed = ipaddress.ip_address(address)
    if isinstance(parsed, ipaddress.IPv4Address):
        return IPv4_MAPPED_PREFIX + parsed.packed
    return parsed.packed


def network_bounds(network: Network) -> tuple[bytes, bytes]:
    """The lowest and highest 16-byte address of `network`, both inclusive."""
    if isinstance(network, ipaddress.IPv4Network):
        low4 = network.network_address.packed
        high4 = network.broadcast_address.packed
        return IPv4_MAPPED_PREFIX + low4, IPv4_MAPPED_PREFIX + high4
    return network.network_address.packed, network.broadcast_address.packed


def unpack_ip(packed: bytes) -> str:
    """The text form of a 16-byte address made by `pack_ip` (IPv4-mapped ones as IPv4)."""
    address = ipaddress.IPv6Address(packed)
    mapped = address.ipv4_mapped
    return str(mapped) if mapped is not None else str(address)


def on_this_host(host: str) -> bool:
    """Whether `host` (a URL's or a bootstrap address's host, IPv6 in brackets or not) is a
    loopback address or `localhost`: by its parsed address, never a prefix
    (`localhost-kafka`, `127.0.0.1.nip.io` and `localhost.example` are elsewhere)."""
    name = host.strip().removeprefix("[").removesuffix("]").rstrip(".").lower()
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False
