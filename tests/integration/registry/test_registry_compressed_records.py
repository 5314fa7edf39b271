"""Events and commands a platform service's Java producer compresses with any of Kafka's codecs
(`compression.type` gzip, snappy, lz4, zstd) are read by the registry, on the real broker.

aiokafka decompresses snappy, lz4 and zstd with `cramjam`, an optional dependency
(`aiokafka[lz4,snappy,zstd]`) the project did not declare: a batch in one of them raised
`UnsupportedCodecError` in the consumer's fetch, a Kafka error the registry waits out and
retries, so one login service producing with `compression.type=zstd` stalled the registry's
partitions for good.
"""

from __future__ import annotations

import asyncio
import uuid

import pytest
from registry_helpers import NOW, StartRegistry, created, read_topic, session_rows, sid

from java_producer import CODECS, java_send
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.models import TerminateSessions
from session_contracts.topics import Topics

pytestmark = pytest.mark.kafka


async def test_records_compressed_with_every_codec_are_folded(
    start_registry: StartRegistry, topics: Topics, kafka_bootstrap: str
) -> None:
    registry = await start_registry()

    def events(codec: str) -> list[tuple[bytes, bytes]]:
        made = [created(f"{codec}-{n}") for n in range(3)]
        return [(record_key("acme", e.session_id), encode(e)) for e in made]

    await asyncio.gather(*(java_send(kafka_bootstrap, topics.events, events(c), c) for c in CODECS))
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=NOW,
        tenant_id="acme",
        requested_by="admin-7",
        session_ids=[sid(f"{codec}-0") for codec in CODECS],
    )
    key = record_key("acme", str(command.command_id))
    await java_send(kafka_bootstrap, topics.commands, [(key, encode(command))], "zstd")
    await registry.wait_until_idle(30)

    rows = await session_rows(registry)
    assert set(rows) == {sid(f"{codec}-{n}") for codec in CODECS for n in range(3)}
    ended = {s for s, row in rows.items() if row["state"] == "terminated"}
    assert ended == {sid(f"{codec}-0") for codec in CODECS}
    assert await read_topic(kafka_bootstrap, topics.dead_letters) == []
    revoked = {r.key for r in await read_topic(kafka_bootstrap, topics.revocations)}
    assert revoked == {record_key("acme", s) for s in ended}
