"""What the contract accepts as an address, both backends store unchanged; what they cannot
store (a zone id: any length, any character, NUL included) is dead-lettered with its reason.

Before, `fe80::1%` + NUL passed the contract, PostgreSQL refused the NUL and the registry retried
the batch forever (the database error counted as a connectivity fault), and on PostgreSQL a long
zone id was cut to the column's 45 characters by the bulk insert's array cast.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from registry_helpers import NOW, StartRegistry, activity, created, read_topic, session_rows, sid

from session_contracts.addresses import pack_ip
from session_contracts.codec import decode_event, encode
from session_contracts.handles import record_key
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka

# (as the producer spells it, as the contract keeps it)
EDGE = [
    ("255.255.255.255", "255.255.255.255"),
    ("0.0.0.0", "0.0.0.0"),
    ("::", "::"),
    ("::1", "::1"),
    ("::ffff:192.0.2.1", "::ffff:192.0.2.1"),
    ("::FFFF:C000:0201", "::ffff:192.0.2.1"),
    ("2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
    ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
    ("fe80::1", "fe80::1"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ("ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
]
ZONED = ["fe80::1%eth0", "fe80::1%\x00", "fe80::1%" + "z" * 60, "fe80::1%\u202e\n"]


def _raw(event: Any, ip: str) -> bytes:
    payload = json.loads(encode(event))
    payload["ip_address"] = ip
    return json.dumps(payload).encode()


async def test_edge_addresses_round_trip_and_zone_ids_are_dead_lettered(
    start_registry: StartRegistry,
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
) -> None:
    registry = await start_registry()
    sent: list[bytes] = []
    for n, (spelled, _) in enumerate(EDGE):
        name = f"ip-{n}"
        later = activity(name, NOW - timedelta(minutes=1))
        current = EDGE[-1 - n][0]  # another edge case as the current address
        for value in (_raw(created(name), spelled), _raw(later, current)):
            sent.append(value)
            await send((record_key("acme", sid(name)), value), topic=topics.events)
    key = b"hostile"  # one partition: the record after the refused ones must still be applied
    refused = [_raw(created(f"zone-{n}"), ip) for n, ip in enumerate(ZONED)]
    refused += [_raw(activity("ip-0", NOW), ip) for ip in ZONED]
    for value in refused:
        await send((key, value), topic=topics.events)
    await send((key, encode(created("after-zones"))), topic=topics.events)
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert set(rows) == {sid(f"ip-{n}") for n in range(len(EDGE))} | {sid("after-zones")}
    for n, (spelled, kept) in enumerate(EDGE):
        row = rows[sid(f"ip-{n}")]
        current = EDGE[-1 - n][1]
        assert (row["ip_address"], row["current_ip"]) == (kept, current), spelled
        assert bytes(row["ip_packed"]) == pack_ip(kept)
        # what the contract read is what the database holds, character for character
        assert decode_event(sent[2 * n]).ip_address == kept  # type: ignore[union-attr]
    assert rows[sid("ip-0")]["current_ip"] == EDGE[-1][1]  # the refused activity changed nothing

    letters = await read_topic(kafka_bootstrap, topics.dead_letters)
    assert [letter.value for letter in letters] == refused
    for letter in letters:
        reason = dict(letter.headers)["dlq.reason"].decode()
        assert "ip_address: Value error, an IPv6 zone id" in reason, reason
        assert not any(c in reason for c in "\x00\n\u202e"), reason
