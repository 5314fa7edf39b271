"""Records sent by Kafka's own Java producer (`kafka-console-producer`, from the broker's jars),
as a platform service written in Java sends them: compressed with any of Kafka's codecs."""

from __future__ import annotations

import asyncio
import functools
import subprocess
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
CODECS = ("gzip", "snappy", "lz4", "zstd")
"""Kafka's `compression.type` values besides `none`."""


@functools.cache
def kafka_libs() -> str:
    """The folder of the Kafka jars (`deploy/kafka.sh libs` fetches them if needed)."""
    done = subprocess.run(
        ["bash", str(REPO / "deploy" / "kafka.sh"), "libs"],
        capture_output=True,
        text=True,
        check=True,
        timeout=600,
    )
    return done.stdout.strip().splitlines()[-1]


async def java_send(
    bootstrap: str,
    topic: str,
    records: Sequence[tuple[bytes, bytes]],
    codec: str = "none",
    *,
    null: bytes | None = None,
) -> None:
    """Send `records` (key, value; neither holding a tab or a newline) to `topic`, in batches
    compressed with `codec`, and wait until the producer has closed (acks=all, flushed). A
    key or value equal to `null` is sent as null (Java sends a record with neither)."""
    assert all(b"\t" not in k + v and b"\n" not in k + v for k, v in records)
    process = await asyncio.create_subprocess_exec(
        "java",
        "-XX:TieredStopAtLevel=1",  # a short-lived JVM: starts on less CPU
        "-cp",
        f"{kafka_libs()}/*",
        "org.apache.kafka.tools.ConsoleProducer",
        "--bootstrap-server",
        bootstrap,
        "--topic",
        topic,
        "--compression-codec",
        codec,
        "--property",
        "parse.key=true",
        "--property",
        "key.separator=\t",
        "--producer-property",
        "acks=all",
        *(["--property", f"null.marker={null.decode()}"] if null is not None else []),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    lines = b"".join(k + b"\t" + v + b"\n" for k, v in records)
    out, err = await asyncio.wait_for(process.communicate(lines), 120)
    assert process.returncode == 0, (codec, err.decode(errors="replace")[-2000:])
    assert b"ERROR" not in out + err, (codec, (out + err).decode(errors="replace")[-2000:])
