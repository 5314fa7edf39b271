"""What reading fetched batches through `TolerantMemoryRecords` costs, against aiokafka's own.

    python -m bench.fetch_parse [--records 20000] [--rounds 7] [--codec none|gzip|snappy|lz4|zstd]

Every consumer of the project reads a fetch's batches through `session_contracts.kafka_records`
(a header name that is not UTF-8 no longer stops it). The fetch is the same `--records`
records (`bench.ingest`'s events, with a `traceparent`) in batches of 1, 10, 100 and 1,000
records, compressed with `--codec` (none by default), turned into consumer records as
aiokafka's fetcher does (CRCs checked), in alternating rounds:

1. aiokafka: its `PartitionRecords` over its `MemoryRecords` (C), as before;
2. tolerant: `TolerantPartitionRecords` (which stops before a batch whose CRC fails) over
   `TolerantMemoryRecords`, every batch readable (the path of every fetch; a compressed batch
   is inflated by `record_batches.inflate`, within its bound, not by aiokafka);
3. lenient: every batch with one header name that is not UTF-8, so aiokafka fails on each and
   `read_batch` (Python) reads it again: what a producer writing only such records costs.

Prints ns per record (best round) and the ratio of each to aiokafka's in the same run.
"""

from __future__ import annotations

import argparse
import itertools
import time
from collections.abc import Callable

from aiokafka.consumer.fetcher import PartitionRecords
from aiokafka.record.default_records import DefaultRecordBatchBuilder, _DefaultRecordBatchBuilderPy
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from session_contracts.kafka_records import TolerantMemoryRecords, TolerantPartitionRecords
from session_registry.workload import Workload, sessions_for
from session_registry.workload import records as workload_records

BATCH_SIZES = (1, 10, 100, 1000)
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}
TP = TopicPartition("sessions.events", 0)


class _RawName(str):
    """A header name whose UTF-8 encoding is one byte that is not UTF-8 (pure-Python builder)."""

    def encode(self, encoding: str = "utf-8", errors: str = "strict") -> bytes:
        return b"\xff" + super().encode()


def fetch(records: int, per_batch: int, codec: int, *, unreadable: bool) -> bytes:
    """`records` records in batches of `per_batch`, as one fetch's bytes."""
    builder_type = _DefaultRecordBatchBuilderPy if unreadable else DefaultRecordBatchBuilder
    name = _RawName("traceparent") if unreadable else "traceparent"
    events = list(itertools.islice(workload_records(Workload(sessions_for(records))), records))
    batches = []
    for start in range(0, records, per_batch):
        builder = builder_type(2, codec, 0, -1, -1, -1, 1 << 24)
        for n in range(min(per_batch, records - start)):
            key, value = events[start + n]
            builder.append(n, 1_700_000_000_000, key, value, [(name, b"00-" + b"a" * 52)])
        raw = bytearray(builder.build())
        raw[:8] = start.to_bytes(8, "big")  # the batch's base offset
        batches.append(bytes(raw))
    return b"".join(batches)


def read(
    partition_type: type[PartitionRecords], records_type: Callable[[bytes], object], data: bytes
) -> float:
    """Seconds to turn the fetch into consumer records, CRCs checked (aiokafka's default)."""
    started = time.perf_counter()
    for _ in partition_type(TP, records_type(data), [], 0, None, None, True, 0):
        pass
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--codec", choices=sorted(CODECS), default="none")
    args = parser.parse_args()
    codec = CODECS[args.codec]
    print(
        f"{args.records} records per fetch ({args.codec}), best of {args.rounds} alternating rounds"
    )
    columns = ("batch", "aiokafka ns", "tolerant ns", "ratio", "lenient ns", "ratio")
    print(" ".join(f"{c:>{w}}" for c, w in zip(columns, (6, 12, 12, 6, 11, 6), strict=True)))
    for per_batch in BATCH_SIZES:
        readable = fetch(args.records, per_batch, codec, unreadable=False)
        unreadable = fetch(args.records, per_batch, codec, unreadable=True)
        best = {"aiokafka": float("inf"), "tolerant": float("inf"), "lenient": float("inf")}
        for _ in range(args.rounds):
            ours = TolerantPartitionRecords, TolerantMemoryRecords
            best["aiokafka"] = min(
                best["aiokafka"], read(PartitionRecords, MemoryRecords, readable)
            )
            best["tolerant"] = min(best["tolerant"], read(*ours, readable))
            best["lenient"] = min(best["lenient"], read(*ours, unreadable))
        ns = {k: v / args.records * 1e9 for k, v in best.items()}
        print(
            f"{per_batch:>6} {ns['aiokafka']:>12.0f} {ns['tolerant']:>12.0f} "
            f"{ns['tolerant'] / ns['aiokafka']:>5.2f}x {ns['lenient']:>11.0f} "
            f"{ns['lenient'] / ns['aiokafka']:>5.2f}x"
        )


if __name__ == "__main__":
    main()
