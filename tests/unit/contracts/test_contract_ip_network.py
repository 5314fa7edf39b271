"""The filter's `ip_address`: what its JSON Schema pattern admits is exactly what the API reads.

The pattern is published (OpenAPI, `schemas/`), so a client or a fuzzer generating from it must
never be refused, and nothing outside it is accepted (netmask notation, zones, leading zeros).
"""

from __future__ import annotations

import ipaddress
import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from session_contracts.models import IP_NETWORK_PATTERN, SessionFilter

PATTERN = re.compile(IP_NETWORK_PATTERN)


@pytest.mark.slow
@settings(max_examples=500, suppress_health_check=list(HealthCheck), database=None)
@given(st.from_regex(PATTERN, fullmatch=True).filter(lambda text: len(text) <= 64))
def test_everything_the_pattern_admits_is_read(text: str) -> None:
    assert SessionFilter(ip_address=text).network() == ipaddress.ip_network(text, strict=False)


@settings(max_examples=500, database=None)
@given(st.ip_addresses(), st.integers(0, 128), st.booleans(), st.booleans())
def test_every_address_and_cidr_network_is_admitted(
    address: ipaddress.IPv4Address | ipaddress.IPv6Address,
    prefix: int,
    with_prefix: bool,
    exploded: bool,
) -> None:
    text = address.exploded if exploded else str(address)
    if with_prefix:
        text += f"/{prefix % (address.max_prefixlen + 1)}"
    assert PATTERN.fullmatch(text), text
    assert SessionFilter(ip_address=text).ip_address == text


@pytest.mark.parametrize(
    "text",
    [
        "10.0.0.0/255.0.0.0",
        "10.0.0.0/0.255.255.255",
        "fe80::1%eth0",
        "010.0.0.1",
        "10.0.0.0/08",
        "10.0.0.0/33",
        "::/129",
        "1::2:3:4:5:6:1.2.3.4",
        "10.0.0",
        "",
        " 10.0.0.1",
        "10.0.0.1\n",
    ],
)
def test_other_spellings_are_refused_naming_the_field(text: str) -> None:
    with pytest.raises(ValidationError, match="ip_address"):
        SessionFilter(ip_address=text)
