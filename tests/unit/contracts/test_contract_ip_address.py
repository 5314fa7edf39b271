"""Event addresses (`IpAddress`): one spelling per address, no zone ids, and what the published
pattern admits is exactly what is read.

A zone id (`fe80::1%eth0`) can be any length and hold any character, NUL included: PostgreSQL
refused the NUL (retried forever as a database error) and the bulk insert cut long ones to the
column's 45 characters. The registry's round trip through both backends is tested in
`tests/integration/registry/test_registry_ip_addresses.py`.
"""

from __future__ import annotations

import ipaddress
import json
import re
import uuid

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from read_model.tables import sessions
from session_contracts.addresses import (
    MAX_IP_TEXT,
    contract_ip,
    network_bounds,
    pack_ip,
    reported_ip,
)
from session_contracts.codec import DecodeError, decode_event
from session_contracts.handles import session_handle
from session_contracts.models import IP_ADDRESS_PATTERN, SessionActivity, SessionFilter

PATTERN = re.compile(IP_ADDRESS_PATTERN)
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def activity(ip: str) -> SessionActivity:
    return SessionActivity(
        event_id=uuid.uuid4(),
        occurred_at="2026-11-30T09:00:00Z",
        tenant_id="acme",
        session_id=session_handle("acme", "s-1"),
        ip_address=ip,
    )


@pytest.mark.parametrize(
    ("sent", "kept"),
    [
        ("10.0.0.1", "10.0.0.1"),
        ("255.255.255.255", "255.255.255.255"),
        ("0.0.0.0", "0.0.0.0"),
        ("::", "::"),
        ("::1", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        # IPv4-mapped: one spelling on every Python (3.11 printed ::ffff:a00:1)
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("::FFFF:0a00:0001", "::ffff:10.0.0.1"),
        ("0:0:0:0:0:ffff:255.255.255.255", "::ffff:255.255.255.255"),
        # the longest text the contract takes (45 characters) and the IPv4-compatible form
        (
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ),
        ("::1.2.3.4", "::102:304"),
    ],
)
def test_an_address_is_kept_in_one_spelling(sent: str, kept: str) -> None:
    assert PATTERN.fullmatch(sent)
    assert activity(sent).ip_address == kept
    assert contract_ip(kept) == kept  # the spelling is a fixed point
    assert pack_ip(kept) == pack_ip(sent)


@pytest.mark.parametrize(
    "zoned",
    ["fe80::1%eth0", "fe80::1%\x00", "fe80::1%" + "z" * 60, "fe80::1%", "::1%1", "10.0.0.1%0"],
)
def test_a_zone_id_is_refused_with_a_reason(zoned: str) -> None:
    assert not PATTERN.fullmatch(zoned)
    with pytest.raises(ValidationError, match="zone id"):
        activity(zoned)
    raw = activity("fe80::1").model_dump(mode="json")
    raw["ip_address"] = zoned
    with pytest.raises(DecodeError, match=r"ip_address: .*zone id") as refused:
        decode_event(json.dumps(raw).encode())
    assert "\x00" not in refused.value.reason


@pytest.mark.parametrize(
    "text", ["", " 10.0.0.1", "10.0.0.1\n", "010.0.0.1", "10.0.0", "1::2:3:4:5:6:1.2.3.4", "::g"]
)
def test_other_spellings_are_refused(text: str) -> None:
    assert not PATTERN.fullmatch(text)
    with pytest.raises(ValidationError, match="ip_address"):
        activity(text)


@settings(max_examples=300, suppress_health_check=list(HealthCheck), database=None)
@given(st.from_regex(PATTERN, fullmatch=True))
def test_everything_the_pattern_admits_is_read(text: str) -> None:
    assert activity(text).ip_address == contract_ip(text)


@settings(max_examples=500, database=None)
@given(st.ip_addresses(), st.sampled_from(["str", "exploded", "upper", "mapped"]))
def test_every_address_is_admitted_stored_whole_and_found_by_the_filter(
    address: Address, spelling: str
) -> None:
    if spelling == "mapped" and isinstance(address, ipaddress.IPv4Address):
        text = f"::ffff:{address}"
    elif spelling == "exploded":
        text = address.exploded
    elif spelling == "upper":
        text = str(address).upper()
    else:
        text = str(address)
    assert PATTERN.fullmatch(text), text
    kept = activity(text).ip_address
    assert kept is not None
    assert len(kept) <= MAX_IP_TEXT <= sessions.c.ip_address.type.length  # type: ignore[attr-defined]
    assert sessions.c.current_ip.type.length == sessions.c.ip_address.type.length  # type: ignore[attr-defined]
    # the admin API's filter (the shared IpNetwork type) takes the stored text and finds it
    network = SessionFilter(ip_address=kept).network()
    assert network is not None
    assert network_bounds(network) == (pack_ip(kept), pack_ip(kept))


def test_the_filter_refuses_zone_ids_too() -> None:
    with pytest.raises(ValidationError, match="ip_address"):
        SessionFilter(ip_address="fe80::1%eth0")


@pytest.mark.parametrize(
    ("peer", "reported"),
    [
        ("fe80::1%eth0", "fe80::1"),
        ("fe80::1%\x00", "fe80::1"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("10.0.0.1", "10.0.0.1"),
        ("/run/app.sock", None),
        ("", None),
        (None, None),
    ],
)
def test_a_peer_address_is_reported_without_its_zone(
    peer: str | None, reported: str | None
) -> None:
    assert reported_ip(peer) == reported
