"""Records as the broker accepts them and no well-behaved client writes them.

- Header names of any bytes (Java encodes a name as UTF-8; so does aiokafka's C builder).
  `raw_send` runs this module as a script in a process of its own, where aiokafka uses its
  pure-Python batch builder (`AIOKAFKA_NO_EXTENSIONS`), which takes a name's bytes from the
  name's `encode`: a `str` whose `encode` returns the raw bytes writes them as they are.
- A record at an offset delta of its producer's choosing (`send_offset_forged`): a produce
  request of a batch built here, its header what the broker checks.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Sequence

RawHeaders = Sequence[tuple[bytes, bytes | None]]


class _RawName(str):
    """A header name whose UTF-8 encoding is whatever bytes it was given."""

    raw: bytes

    def __new__(cls, raw: bytes) -> _RawName:
        name = super().__new__(cls, raw.decode("utf-8", errors="replace"))
        name.raw = raw
        return name

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return self.raw


async def raw_send(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes | None, bytes | None, RawHeaders]],
    *,
    partition: int = 0,
    codec: str | None = None,
) -> None:
    """Send `records` (key, value, headers with names as bytes) to one partition, in order, in
    as few batches as the producer makes, and wait for the broker to take them (acks=all)."""
    spec = {
        "bootstrap": bootstrap,
        "topic": topic,
        "partition": partition,
        "codec": codec,
        "records": [
            [_hex(key), _hex(value), [[name.hex(), _hex(v)] for name, v in headers]]
            for key, value, headers in records
        ],
    }
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env={**os.environ, "AIOKAFKA_NO_EXTENSIONS": "1"},
    )
    _out, err = await asyncio.wait_for(process.communicate(json.dumps(spec).encode()), 60)
    assert process.returncode == 0, err.decode(errors="replace")[-2000:]


async def send_offset_forged(
    bootstrap: str, topic: str, records: Sequence[tuple[int, bytes, bytes]], partition: int = 0
) -> int:
    """Produce one uncompressed batch of `records` (offset delta, key, value) to `partition`,
    its header saying `len(records)` records (what the broker checks of an uncompressed batch:
    Kafka 4.1 rewrites its base offset and keeps each record's delta as written); the base
    offset the broker gave it."""
    import struct

    from aiokafka import AIOKafkaClient, TopicPartition
    from aiokafka.protocol.produce import ProduceRequest
    from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
    from aiokafka.record.util import calc_crc32c

    builder = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, -1, 1 << 20)
    for delta, key, value in records:
        builder.append(delta, None, key, value, [])
    raw = builder.build()
    struct.pack_into(">i", raw, 23, len(records) - 1)  # lastOffsetDelta: count - 1
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))  # the CRC, from attributes
    client = AIOKafkaClient(bootstrap_servers=bootstrap)
    await client.bootstrap()
    try:
        await client._metadata_update(client.cluster, [topic])
        leader = client.cluster.leader_for_partition(TopicPartition(topic, partition))
        request = ProduceRequest(None, -1, 30_000, [(topic, [(partition, bytes(raw))])])
        answer = await client.send(leader, request)
    finally:
        await client.close()
    ((_, ((_, error, base, *_),)),) = answer.topics
    assert error == 0, f"the broker refused the batch: error {error}"
    return int(base)


def _hex(data: bytes | None) -> str | None:
    return None if data is None else data.hex()


def _unhex(text: str | None) -> bytes | None:
    return None if text is None else bytes.fromhex(text)


async def _send(spec: dict[str, object]) -> None:
    from aiokafka import AIOKafkaProducer
    from aiokafka.record.default_records import DefaultRecordBatchBuilder

    assert DefaultRecordBatchBuilder.__name__.endswith("Py"), "aiokafka's C builder in use"
    producer = AIOKafkaProducer(
        bootstrap_servers=spec["bootstrap"],
        acks="all",
        linger_ms=200,  # the records in one batch, as a busy producer sends them
        compression_type=spec["codec"],
    )
    await producer.start()
    try:
        sent = []
        for key, value, headers in spec["records"]:  # type: ignore[attr-defined]
            sent.append(
                await producer.send(
                    str(spec["topic"]),
                    _unhex(value),
                    key=_unhex(key),
                    partition=int(spec["partition"]),  # type: ignore[call-overload]
                    headers=[(_RawName(bytes.fromhex(n)), _unhex(v)) for n, v in headers],
                )
            )
        for future in sent:
            await future
    finally:
        await producer.stop()


if __name__ == "__main__":
    asyncio.run(_send(json.loads(sys.stdin.read())))
