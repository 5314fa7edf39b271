"""IP addresses as 16 comparable bytes, so a CIDR filter becomes a byte range on any database."""

from __future__ import annotations

import ipaddress

IPv4_MAPPED_PREFIX = b"\x00" * 10 + b"\xff\xff"


def pack_ip(address: str) -> bytes:
    """An IPv4 or IPv6 address as 16 bytes; IPv4 is mapped into IPv6 (::ffff:a.b.c.d)."""
    ip = ipaddress.ip_address(address)
    if ip.version == 4:
        return IPv4_MAPPED_PREFIX + ip.packed
    return ip.packed


def network_bounds(network: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[bytes, bytes]:
    """The first and last packed address of a network, both inclusive."""
    return (
        pack_ip(str(network.network_address)),
        pack_ip(str(network.broadcast_address)),
    )
