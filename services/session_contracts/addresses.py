"""IP addresses as 16 sortable bytes, so a CIDR filter is a byte range on an indexed column.

The registry stores `sessions.ip_packed = pack_ip(ip_address)`; the admin API turns a CIDR
filter into `network_bounds(network)`. Both sides use these two functions, nothing else.
"""

from __future__ import annotations

import ipaddress

IPv4_MAPPED_PREFIX = bytes(10) + b"\xff\xff"
"""`::ffff:0:0/96`: an IPv4 address a.b.c.d is stored as ::ffff:a.b.c.d."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def pack_ip(address: str) -> bytes:
    """The 16-byte form of an IPv4 or IPv6 address (IPv4 mapped into IPv6); ValueError if bad."""
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
