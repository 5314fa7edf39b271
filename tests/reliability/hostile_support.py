"""Hostile-input tests' shared parts: a seeded record mutator, registries on real Kafka, sending.

The fuzz is a seeded generator rather than hypothesis: each record costs a broker round trip
and a database write, so a few hundred chosen hostile shapes beat thousands of shrinkable ones,
and a failing seed (printed in every assertion) replays exactly. `SESSIONS_FUZZ_SEED` and
`SESSIONS_FUZZ_RECORDS` change the seed and the number of records (the soak runs more).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

from aiokafka import AIOKafkaProducer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "registry"))

from registry_helpers import registry_settings

from fresh_topics import connection
from session_contracts.kafka_clients import new_producer
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry

SEED = int(os.environ.get("SESSIONS_FUZZ_SEED", "20261127"))
RECORDS = int(os.environ.get("SESSIONS_FUZZ_RECORDS", "240"))

HOSTILE_STRINGS = [
    "' OR 1=1 --",
    '"; DROP TABLE sessions; --',
    "<script>alert(1)</script>",
    "<img src=x onerror=alert(1)>",
    "%",
    "_",
    "\\",
    "%_\\%",
    "Ünïcødé 名前 🙂",
    "\u202eevil",
    "a\u0000b",
]
BAD_TENANTS = [
    "",
    "../../etc/passwd",
    "acme' OR '1'='1",
    "acme; DROP TABLE sessions",
    "a" * 65,
    "acmé",
    "acme\n",
    "*",
    "acme\u0000",
    None,
    42,
]
FAR_TIMES = {
    "far future": ("9999-12-31T23:59:59Z", True),
    "far future, no room for the policy": ("9999-12-31T23:59:59.999999+00:00", True),
    "far past": ("0001-01-01T00:00:00Z", True),
    "far past, offset below year 1": ("0001-01-01T00:00:00+01:00", False),
    "no offset": ("2026-01-01T00:00:00", False),
    "year 10000": ("10000-01-01T00:00:00Z", False),
    "not a time": ("yesterday", False),
}


@dataclass(frozen=True)
class Hostile:
    """One record to send: what it is, its key and value, and whether it must be valid.

    `valid` is True (must be applied), False (must be dead-lettered) or None (a blind mutation:
    the decoder decides, and the test checks the consumer agrees with it).
    """

    name: str
    key: bytes | None
    value: bytes | None
    valid: bool | None
    headers: tuple[tuple[str, bytes | None], ...] = ()
    """Sent with the record: a header without a value (Kafka allows one) once stopped the
    registry and made a gateway pass over a revocation."""
    raw_headers: tuple[tuple[bytes, bytes | None], ...] = ()
    """Headers whose names are any bytes, sent by `raw_producer` (a name that is not UTF-8
    stopped every consumer of its topic until 2026-12-05)."""
    bomb: bool = False
    """Sent as one zstd batch inflating past `INFLATED_MAX_BYTES` (its `value` is left out):
    a consumer reads one placeholder at its offset, the registry dead-letters it as an
    unreadable batch."""
    placed_past: bool = False
    """Sent as one uncompressed batch whose record's offset delta is 2^31 - 1
    (`raw_producer.send_offset_forged`): handed over at offset 2^31 until stop 69, which moved
    the registry's position there and skipped every later record of the partition; now one
    placeholder at the batch's offset, dead-lettered as an unreadable batch."""


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode("utf-8", "surrogatepass")


def _deep(depth: int) -> str:
    return "[" * depth + "]" * depth


def mutations(
    rng: random.Random,
    base: dict[str, Any],
    key: bytes,
    credentials: str | list[str] | None = None,
) -> list[Hostile]:
    """Every hostile variant of one valid v2 payload (an event or a command), keyed `key`.

    `credentials`: what the base's `session_id` (or `session_ids`) are the handles of; given,
    the v1-shaped and credential-carrying variants are added (see `_contract_versions`).
    """
    body = _dumps(base)
    fields = [f for f in base if f != "type"]
    out = [
        Hostile("valid", key, body, True),
        Hostile("duplicate delivery", key, body, True),
        # the registry reads the tenant and the session from the value, never from the key
        Hostile("key is not <tenant>/<handle>", b"someone-else", body, True),
        Hostile("no key", None, body, True),
        Hostile("no value (tombstone)", key, None, False),
        Hostile("empty value", key, b"", False),
        Hostile("truncated", key, body[: rng.randrange(len(body))], False),
        Hostile("invalid UTF-8", key, body.replace(b'"', b'"\xff\xfe', 1), False),
        Hostile("lone surrogate", key, body.replace(b'"acme"', b'"acme\\ud800"', 1), False),
        Hostile("not an object", key, rng.choice([b"[]", b"null", b"42", b'"x"', b"true"]), False),
        Hostile(
            "deeply nested JSON",
            key,
            body[:-1] + f', "nested": {_deep(rng.choice([50, 5000, 30000]))}}}'.encode(),
            False,
        ),
        Hostile("unknown field", key, _dumps({**base, "is_admin": True}), False),
        Hostile("oversized", key, _dumps({**base, "padding": "x" * 200_000}), False),
        Hostile("future schema_version", key, _dumps({**base, "schema_version": 99}), False),
        # v2: schema_version is the integer itself, on the fast path as on the checked one
        Hostile("schema_version as text", key, _dumps({**base, "schema_version": "1"}), False),
        Hostile("schema_version 2 as text", key, _dumps({**base, "schema_version": "2"}), False),
        Hostile("schema_version 2.0", key, _dumps({**base, "schema_version": 2.0}), False),
        Hostile("schema_version true", key, _dumps({**base, "schema_version": True}), False),
        Hostile("schema_version 0", key, _dumps({**base, "schema_version": 0}), False),
    ]
    if credentials is not None:
        out += _contract_versions(rng, base, key, credentials)
    for tenant in rng.sample(BAD_TENANTS, 3):
        out.append(Hostile(f"tenant {tenant!r}", key, _dumps({**base, "tenant_id": tenant}), False))
    name = rng.choice(fields)
    out.append(Hostile(f"{name} is null", key, _dumps({**base, name: None}), None))
    name = rng.choice(fields)
    wrong: Any = rng.choice([123, -1, 1.5, True, [], {}, "text", 2**70, "🙂" * 300])
    out.append(Hostile(f"{name} = {str(wrong)[:12]!r}", key, _dumps({**base, name: wrong}), None))
    for _ in range(2):
        flipped = bytearray(body)
        for _ in range(rng.randint(1, 3)):
            flipped[rng.randrange(len(flipped))] ^= 1 << rng.randrange(8)
        out.append(Hostile("bit flips", key, bytes(flipped), None))
    duplicated = body[:-1] + b', "tenant_id": "evil"}'
    out.append(Hostile("duplicated tenant_id key", key, duplicated, None))
    return out


def _contract_versions(
    rng: random.Random, base: dict[str, Any], key: bytes, credentials: str | list[str]
) -> list[Hostile]:
    """v1-shaped records (upcast, or refused where v1 refused them too) and v2 records that
    carry a credential where a handle belongs (refused: a producer that forgets to hash is
    dead-lettered, never stored). The v1 ones get an id of their own: they name another
    session than the base (the handle of the credential), so they are not its duplicates."""
    field = "session_id" if "session_id" in base else "session_ids"
    own_id = "event_id" if "event_id" in base else "command_id"
    fresh = {**base, own_id: str(uuid.UUID(int=rng.getrandbits(128)))}
    v1 = {**fresh, "schema_version": 1, field: credentials}
    broken: str | list[str] = "has space" if isinstance(credentials, str) else ["ok", "x" * 129]
    return [
        Hostile("v1 record (upcast: its credential becomes the handle)", key, _dumps(v1), True),
        Hostile(
            "v1 record naming the handle (upcast too)",
            key,
            _dumps({**v1, field: base[field]}),
            True,
        ),
        Hostile("v1 record, an id v1 refused too", key, _dumps({**v1, field: broken}), False),
        Hostile(
            "v1 record without tenant_id",
            key,
            _dumps({k: v for k, v in v1.items() if k != "tenant_id"}),
            False,
        ),
        Hostile(
            "v2 record naming the credential", key, _dumps({**fresh, field: credentials}), False
        ),
    ]


class Sent(NamedTuple):
    """A record as the broker took it."""

    record: Hostile
    partition: int
    offset: int
    timestamp: datetime
    """Its timestamp: the broker's append time on `sessions.events`."""


async def send_all(producer: AIOKafkaProducer, topic: str, records: list[Hostile]) -> list[Sent]:
    """Send in order, all to partition 0; return each record with where and when it landed."""
    futures = [
        await producer.send(topic, r.value, key=r.key, partition=0, headers=list(r.headers))
        for r in records
    ]
    sent = []
    for record, future in zip(records, futures, strict=True):
        meta = await future
        at = datetime.fromtimestamp(meta.timestamp / 1000, UTC)
        sent.append(Sent(record, meta.partition, meta.offset, at))
    return sent


@contextlib.asynccontextmanager
async def running(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> AsyncIterator[tuple[Registry, AIOKafkaProducer]]:
    """A registry on the test's topics and database, and an idempotent producer; both stopped."""
    registry = Registry.from_settings(registry_settings(kafka_bootstrap, topics, db_url))
    producer = new_producer(connection(kafka_bootstrap))
    await producer.start()
    try:
        await registry.start()
        try:
            yield registry, producer
        finally:
            await registry.stop()
    finally:
        await producer.stop()


async def consumed_all(registry: Registry, seconds: float = 60) -> None:
    """Wait until the registry is idle; fail at once, with its error, if a task of it died."""
    waiting = asyncio.ensure_future(registry.wait_until_idle(seconds))
    try:
        await asyncio.wait([waiting, *registry._tasks], return_when=asyncio.FIRST_COMPLETED)
        for task in registry._tasks:
            if task.done():
                raise AssertionError(f"registry task {task.get_name()} stopped") from (
                    task.exception() if not task.cancelled() else None
                )
        await waiting
    finally:
        waiting.cancel()
