"""A fetched batch aiokafka cannot read for a header name that is not UTF-8 is read leniently,
as Java reads it; every other batch is read by aiokafka, as before."""

from __future__ import annotations

import struct
from typing import Any

import aiokafka.consumer.fetcher as fetcher
import pytest
from aiokafka.record.default_records import (
    DefaultRecordBatch,
    DefaultRecordBatchBuilder,
    _DefaultRecordBatchBuilderPy,
)
from aiokafka.record.legacy_records import LegacyRecordBatchBuilder
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import calc_crc32c
from aiokafka.structs import TopicPartition

from raw_producer import _RawName
from session_contracts.kafka_records import (
    CHUNK,
    UNREADABLE,
    UNREADABLE_HEADER,
    TolerantBatch,
    TolerantMemoryRecords,
    tolerate_hostile_batches,
    unreadable_reason,
)
from session_contracts.record_batches import INFLATED_MAX_BYTES, read_batch

Record = tuple[bytes | None, bytes | None, list[tuple[Any, bytes | None]]]
RECORDS: list[Record] = [
    (b"k1", b"v1", []),
    (None, b"no key", [("traceparent", b"00-ab"), ("empty", b""), ("none", None)]),
    (b"k3", None, [("h\u00e9\u4e2d\U0001f600", b"\xff\x00")]),  # a UTF-8 name, binary value
    (b"", b"x" * 5000, [("dup", b"1"), ("dup", b"2")]),
]
TP = TopicPartition("sessions.events", 0)
CODECS = {"none": 0, "gzip": 1, "snappy": 2, "lz4": 3, "zstd": 4}


def _build(
    records: list[Record], codec: int = 0, builder: Any = DefaultRecordBatchBuilder
) -> bytes:
    batch = builder(2, codec, 0, -1, -1, -1, 1 << 20)
    for n, (key, value, headers) in enumerate(records):
        batch.append(n * 3, 1_700_000_000_000 + n * 7, key, value, headers)  # offsets with gaps
    return bytes(batch.build())


def _tolerant(raw: bytes) -> TolerantBatch:
    batch = TolerantMemoryRecords(raw).next_batch()
    assert isinstance(batch, TolerantBatch)
    return batch


def _seen(records: Any) -> list[tuple[Any, ...]]:
    return [
        (r.offset, r.timestamp, r.timestamp_type, r.key, r.value, list(r.headers)) for r in records
    ]


@pytest.mark.parametrize("codec", CODECS)
def test_a_readable_batch_is_read_alike_by_aiokafka_and_leniently(codec: str) -> None:
    raw = _build(RECORDS, CODECS[codec])
    assert _seen(read_batch(raw)) == _seen(DefaultRecordBatch(raw))
    assert _seen(_tolerant(raw)) == _seen(DefaultRecordBatch(raw))


def test_log_append_time_is_read_alike() -> None:
    raw = bytearray(_build(RECORDS))
    (attributes,) = struct.unpack_from(">h", raw, 21)
    struct.pack_into(">h", raw, 21, attributes | 0x08)  # the broker's timestamp, not the record's
    ours, theirs = _seen(read_batch(bytes(raw))), _seen(DefaultRecordBatch(bytes(raw)))
    assert ours == theirs
    assert {r[1] for r in ours} == {1_700_000_000_000 + 21} and {r[2] for r in ours} == {1}


@pytest.mark.parametrize("codec", CODECS)
def test_a_header_name_not_utf8_is_read_with_replacement_characters(codec: str) -> None:
    named = [("ok", b"1"), (_RawName(b"\xff\xfebad\xc3"), b"v"), (_RawName(b"\xed\xa0\x80"), None)]
    records: list[Record] = [RECORDS[0], (b"k", b"v", named), RECORDS[3]]
    raw = _build(records, CODECS[codec], builder=_DefaultRecordBatchBuilderPy)
    with pytest.raises(UnicodeDecodeError):
        list(DefaultRecordBatch(raw))  # what stopped every consumer at this position

    read = _seen(_tolerant(raw))
    assert [r[0] for r in read] == [0, 3, 6]
    assert read[1][5] == [
        ("ok", b"1"),
        ("\ufffd\ufffdbad\ufffd", b"v"),
        ("\ufffd\ufffd\ufffd", None),
    ]
    assert read[0] == _seen(DefaultRecordBatch(_build([RECORDS[0]])))[0]
    assert read[2][3:] == (b"", b"x" * 5000, [("dup", b"1"), ("dup", b"2")])
    for name, _ in read[1][5]:
        name.encode("utf-8")  # a dead letter copies the names: they must encode again


@pytest.mark.parametrize(
    ("corrupt", "handed"),
    [
        pytest.param(lambda raw: raw[:-3], [40], id="record cut short"),
        pytest.param(lambda raw: raw + b"\x00", [40, 43], id="bytes after the last record"),
        pytest.param(lambda raw: raw[:-1] + b"\x01", [40], id="header count negative"),
    ],
)
def test_a_batch_unreadable_either_way_hands_over_what_reads_then_a_placeholder(
    corrupt: Any, handed: list[int]
) -> None:
    raw = bytearray(_build([(b"k", b"v", []), (b"k2", b"v2", [])]))  # ends in a header count, 0
    struct.pack_into(">q", raw, 0, 40)  # base offset 40, last 43 (offsets 0 and 3)
    bad = corrupt(bytes(raw))
    bad = bad[:8] + struct.pack(">i", len(bad) - 12) + bad[12:]  # the batch's length agrees
    bad = bad[:17] + struct.pack(">I", calc_crc32c(bad[21:])) + bad[21:]  # and its CRC
    with pytest.raises(UNREADABLE):
        list(DefaultRecordBatch(bad))  # what stopped every consumer at this position

    read = list(
        fetcher.PartitionRecords(TP, TolerantMemoryRecords(bad), [], 0, None, None, True, 0)
    )
    assert [r.offset for r in read if r.key is not None] == handed
    placeholders = [r for r in read if r.key is None]
    if handed[-1] == 43:  # all read: what follows the last record is past the batch's offsets
        assert placeholders == []
        return
    (placeholder,) = placeholders
    assert (placeholder.offset, placeholder.value) == (43, None)
    reason = unreadable_reason(placeholder.key, placeholder.value, placeholder.headers)
    assert reason is not None and reason.startswith("unreadable batch (offsets 40 to 43): ")
    assert placeholder.timestamp == 1_700_000_000_007


def test_only_a_record_without_key_and_value_is_taken_for_a_placeholder() -> None:
    why = b"unreadable batch (offsets 1 to 2): why"
    headers = [(UNREADABLE_HEADER, why)]
    assert unreadable_reason(None, None, headers) == why.decode()
    assert unreadable_reason(b"k", None, headers) is None
    assert unreadable_reason(None, b"{}", headers) is None
    assert unreadable_reason(None, None, [(UNREADABLE_HEADER, None), ("x", why)]) is None
    # a forged one names no other class of dead letter (metrics count by the reason's start)
    forged = [(UNREADABLE_HEADER, b"the database refused it: forged")]
    assert unreadable_reason(None, None, forged) is None


def test_memory_records_frame_every_batch_and_leave_a_partial_one() -> None:
    first = _build(RECORDS[:2])
    second = bytearray(
        _build([(b"k", b"v", [(_RawName(b"\x80"), b"")])], builder=_DefaultRecordBatchBuilderPy)
    )
    struct.pack_into(">q", second, 0, 100)  # the second batch's base offset
    third = _build(RECORDS[2:])
    data = first + bytes(second) + third[:-10]  # a fetch ends part-way through a batch

    records = TolerantMemoryRecords(data)
    assert records.size_in_bytes() == len(data)
    read = []
    while records.has_next():
        batch = records.next_batch()
        read.append(_seen(batch))
        assert batch.next_offset == batch.base_offset + batch.last_offset_delta + 1
    assert read == [
        _seen(DefaultRecordBatch(first)),
        [(100, 1_700_000_000_000, 0, b"k", b"v", [("\ufffd", b"")])],
    ]
    assert records.next_batch() is None
    assert MemoryRecords(data).size_in_bytes() == len(data)


def test_a_control_batchs_marker_is_read_by_next() -> None:
    raw = _build([(b"\x00\x00\x00\x00", b"\x00\x00\x00\x00\x00\x00", [])])
    batch = _tolerant(raw)
    assert next(batch).key == b"\x00\x00\x00\x00"
    with pytest.raises(StopIteration):
        next(batch)


def test_the_fetcher_reads_through_tolerant_records_once_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(fetcher, "MemoryRecords", MemoryRecords)
    tolerate_hostile_batches()
    tolerate_hostile_batches()
    assert fetcher.MemoryRecords is TolerantMemoryRecords

    monkeypatch.setattr(fetcher, "MemoryRecords", object)  # an aiokafka reading batches otherwise
    with pytest.raises(RuntimeError, match="not patched"):
        tolerate_hostile_batches()


def test_every_unreadable_batch_of_a_fetch_is_framed_whichever_is_asked_first() -> None:
    """The bytes of a batch aiokafka fails on are framed from the last one framed (a fetch of
    single-record batches, all unreadable, was framed from its start each time: quadratic)."""
    batches = []
    for base in (0, 10, 20, 30):
        raw = bytearray(
            _build(
                [(b"k", str(base).encode(), [(_RawName(b"\xfe"), b"")])],
                builder=_DefaultRecordBatchBuilderPy,
            )
        )
        struct.pack_into(">q", raw, 0, base)
        batches.append(bytes(raw))
    data = b"".join(batches)

    read = list(
        fetcher.PartitionRecords(TP, TolerantMemoryRecords(data), [], 0, None, None, True, 0)
    )
    assert [(r.offset, r.value, r.headers) for r in read] == [
        (base, str(base).encode(), (("\ufffd", b""),)) for base in (0, 10, 20, 30)
    ]
    records = TolerantMemoryRecords(data)
    assert [bytes(records.raw_batch(n)) for n in (2, 3, 0, 1, 1)] == [
        batches[2],
        batches[3],
        batches[0],
        batches[1],
        batches[1],
    ]
    # a batch asked for twice (its count, then its bytes to read it leniently) is framed from
    # itself the second time, not from the fetch's start (quadratic again, a review, stop 69)
    records = TolerantMemoryRecords(data)
    records.raw_batch(3)
    assert records._framed == (3, sum(len(b) for b in batches[:3]))


def test_a_batch_inflating_past_the_bound_is_one_placeholder() -> None:
    raw = _build([(b"k", b"\x00" * (INFLATED_MAX_BYTES + 1), [])], CODECS["zstd"])
    assert len(raw) < 10_000
    (placeholder,) = list(_tolerant(raw))
    reason = unreadable_reason(placeholder.key, placeholder.value, placeholder.headers)
    assert reason == (
        f"unreadable batch (offsets 0 to 0): its records decompress to more than "
        f"{INFLATED_MAX_BYTES} bytes"
    )


def test_a_fetch_hands_over_no_more_batches_once_it_has_inflated_the_bound() -> None:
    """Each batch is within the bound, but many of them would not be: the rest of the fetch
    is left for aiokafka's next one, which starts where this one stopped."""
    half = INFLATED_MAX_BYTES // 2 + 1
    batches = []
    for base in (0, 1, 2):
        raw = bytearray(_build([(b"k", bytes([base]) * half, [])], CODECS["zstd"]))
        struct.pack_into(">q", raw, 0, base)
        batches.append(bytes(raw))
    partition = fetcher.PartitionRecords(
        TP, TolerantMemoryRecords(b"".join(batches)), [], 0, None, None, True, 0
    )
    read = list(partition)
    assert [(r.offset, len(r.value)) for r in read] == [(0, half), (1, half)]
    assert partition.next_fetch_offset == 2
    (rest,) = fetcher.PartitionRecords(
        TP, TolerantMemoryRecords(batches[2]), [], 2, None, None, True, 0
    )
    assert (rest.offset, rest.value[:1]) == (2, b"\x02")


def test_a_batch_of_thousands_of_records_is_parsed_as_the_fetcher_takes_them() -> None:
    """A batch of a million empty records takes 800 KB in zstd: parsed whole before the first
    was handed over, it took 216 MB where aiokafka takes what `max_records` asks for."""
    count = 2 * CHUNK + 5
    raw = _build([(b"k", b"", [])] * count, CODECS["zstd"])
    batch = _tolerant(raw)
    records = iter(batch)
    first = next(records)
    assert first.offset == 0
    assert [r.offset for r in records] == [3 * n for n in range(1, count)]


def test_a_name_not_utf8_past_the_first_chunk_is_read_leniently_from_there() -> None:
    named: list[Record] = [(b"k", str(n).encode(), []) for n in range(CHUNK + 10)]
    named[CHUNK + 3] = (b"k", b"odd", [(_RawName(b"\xff"), b"")])
    raw = _build(named, builder=_DefaultRecordBatchBuilderPy)
    read = list(
        fetcher.PartitionRecords(TP, TolerantMemoryRecords(raw), [], 0, None, None, True, 0)
    )
    assert [r.offset for r in read] == [3 * n for n in range(CHUNK + 10)]
    assert read[CHUNK + 3].headers == (("\ufffd", b""),)
    assert read[CHUNK + 4].value == str(CHUNK + 4).encode()


def test_a_batch_refused_cheaply_counts_for_little() -> None:
    """A corrupt compressed batch refused at once was counted as a bomb: a fetch of them
    handed over one each, every fetch sending the rest again (a thousandfold amplification)."""
    batches = []
    for base in range(5):
        raw = bytearray(_build([(b"k", b"v", [])], CODECS["gzip"]))
        raw[-12:-8] = b"\xff\xff\xff\xff"  # the deflate stream's end: corrupt
        struct.pack_into(">q", raw, 0, base)
        raw[17:21] = struct.pack(">I", calc_crc32c(bytes(raw[21:])))
        batches.append(bytes(raw))
    partition = fetcher.PartitionRecords(
        TP, TolerantMemoryRecords(b"".join(batches)), [], 0, None, None, True, 0
    )
    read = list(partition)
    assert [(r.offset, r.key) for r in read] == [(n, None) for n in range(5)]


def test_a_record_without_a_timestamp_is_read_as_aiokafka_reads_it() -> None:
    raw = _build([(b"k", b"v", [])])
    raw = raw[:27] + struct.pack(">qq", -1, -1) + raw[43:]  # first and max timestamps: none
    aiokafkas = _seen(DefaultRecordBatch(raw))
    assert aiokafkas[0][1:3] == (-1, 0)
    assert _seen(read_batch(raw)) == aiokafkas


def test_bombs_refused_count_against_the_fetch_as_inflated_ones_do() -> None:
    """Refused, a bomb added nothing to the fetch's budget: a fetch of a thousand 1 KB bombs
    inflated each to the bound in one synchronous call (about 40 s of a blocked event loop)."""
    batches = []
    for base in range(3):
        raw = bytearray(_build([(b"k", b"\x00" * (INFLATED_MAX_BYTES + 1), [])], CODECS["zstd"]))
        struct.pack_into(">q", raw, 0, base)
        batches.append(bytes(raw))
    partition = fetcher.PartitionRecords(
        TP, TolerantMemoryRecords(b"".join(batches)), [], 0, None, None, True, 0
    )
    (placeholder,) = list(partition)
    assert (placeholder.offset, placeholder.key, placeholder.value) == (0, None, None)
    assert partition.next_fetch_offset == 1  # the others are left to the next fetch


def _forged(deltas: list[int], base: int = 100, codec: int = 0, names: bool = False) -> bytes:
    """A batch of `len(deltas)` records at those offset deltas, its header as the broker keeps
    it (Kafka 4.1, an uncompressed batch: the base offset and `lastOffsetDelta = count - 1`
    rewritten, the records' own deltas as their producer wrote them), CRC made good."""
    batch = _DefaultRecordBatchBuilderPy(2, codec, 0, -1, -1, -1, 1 << 20)
    for n, delta in enumerate(deltas):
        headers = [(_RawName(b"\xff"), b"")] if names else []
        batch.append(delta, 1_700_000_000_000, b"k", f"v{n}".encode(), headers)
    raw = bytearray(batch.build())
    struct.pack_into(">q", raw, 0, base)
    struct.pack_into(">i", raw, 23, len(deltas) - 1)  # lastOffsetDelta, after the attributes
    struct.pack_into(">I", raw, 17, calc_crc32c(bytes(raw[21:])))
    return bytes(raw)


@pytest.mark.parametrize(
    ("deltas", "handed"),
    [
        pytest.param([2**31 - 1], [], id="one record far past its batch (the attack)"),
        pytest.param([0, 1, 2**31 - 1], [100, 101], id="the last far past"),
        pytest.param([0, 5, 2], [100], id="a delta past the batch's last"),
        pytest.param([-1, 1], [], id="before the batch"),
        pytest.param([0, 0, 2], [100], id="the same offset twice"),
        pytest.param([1, 0, 2], [], id="backwards"),
        # the last offset taken before the end of the batch: the placeholder, at the last
        # offset, would be below the fetcher's position and dropped (a review, stop 69)
        pytest.param([0, 2, 1], [100], id="the last offset taken early"),
        pytest.param([2, 0, 1], [], id="the first at the last offset"),
        pytest.param([1, 0], [], id="two, the first at the last offset"),
    ],
)
@pytest.mark.parametrize("codec", ["none", "zstd"])
@pytest.mark.parametrize("lenient", [False, True], ids=["aiokafka's parse", "read leniently"])
def test_a_record_out_of_its_batchs_offsets_and_the_rest_of_it_are_one_placeholder(
    deltas: list[int], handed: list[int], codec: str, lenient: bool
) -> None:
    """A producer writes each record's offset delta; Kafka 4.1 keeps it in an uncompressed
    batch (checked on a real broker, stop 69). A record of delta 2^31 - 1 was handed over at
    that offset: the fetcher's position, and the registry's stored one, went there, and every
    later record of the partition was skipped as already applied, for good."""
    raw = _forged(deltas, codec=CODECS[codec], names=lenient)
    read = list(
        fetcher.PartitionRecords(TP, TolerantMemoryRecords(raw), [], 100, None, None, True, 0)
    )
    last = 100 + len(deltas) - 1
    assert [r.offset for r in read[:-1]] == handed
    placeholder = read[-1]
    assert (placeholder.offset, placeholder.key, placeholder.value) == (last, None, None)
    reason = unreadable_reason(placeholder.key, placeholder.value, placeholder.headers)
    assert reason is not None
    assert reason.startswith(f"unreadable batch (offsets 100 to {last}): a record at offset ")
    assert "out of place" in reason
    assert all(100 <= r.offset <= last for r in read)


def test_records_within_their_batch_in_order_are_handed_over_whatever_their_gaps() -> None:
    """Compaction leaves gaps between a batch's records, never disorder: read as they are."""
    raw = _forged([0, 4, 5, 9])
    raw = raw[:23] + struct.pack(">i", 9) + raw[27:]  # a compacted batch keeps its last delta
    raw = raw[:17] + struct.pack(">I", calc_crc32c(raw[21:])) + raw[21:]
    read = list(
        fetcher.PartitionRecords(TP, TolerantMemoryRecords(raw), [], 100, None, None, True, 0)
    )
    assert [(r.offset, r.value) for r in read] == [
        (100, b"v0"),
        (104, b"v1"),
        (105, b"v2"),
        (109, b"v3"),
    ]


def test_a_record_out_of_place_past_the_first_chunk_ends_the_batch_there() -> None:
    deltas = list(range(CHUNK + 904))
    deltas[CHUNK + 404] = 2**31 - 1
    raw = _forged(deltas)
    read = list(
        fetcher.PartitionRecords(TP, TolerantMemoryRecords(raw), [], 100, None, None, True, 0)
    )
    last = 100 + len(deltas) - 1
    assert [r.offset for r in read[:-1]] == list(range(100, 100 + CHUNK + 404))
    assert (read[-1].offset, read[-1].key) == (last, None)
    reason = unreadable_reason(read[-1].key, read[-1].value, read[-1].headers)
    assert reason is not None and "a record at offset 2147483747, out of place" in reason


@pytest.mark.parametrize(
    ("deltas", "why"),
    [
        ([0, 5, 2], "past its batch's last offset, 102"),
        ([0, 2, 1], "leaving no room for the 1 record(s) after it before 102"),
        ([-1, 1], "before its batch's first offset, 100"),
        ([0, 0, 2], "not past the record before it, at 100"),
    ],
)
def test_the_reason_says_how_a_record_is_out_of_place(deltas: list[int], why: str) -> None:
    read = list(_tolerant(_forged(deltas)))
    reason = unreadable_reason(read[-1].key, read[-1].value, read[-1].headers) or ""
    assert reason.endswith(f"out of place: {why}; its producer wrote it"), reason


def test_a_message_format_v1_batch_is_handed_to_aiokafka_as_it_was() -> None:
    """A v0/v1 batch (a log kept from a cluster that wrote older formats) has no `magic` in
    aiokafka's reader: asking for it raised AttributeError at every fetch of that position."""
    legacy = LegacyRecordBatchBuilder(1, 0, 1 << 20)
    legacy.append(0, 1_700_000_000_000, b"k", b"L0")
    v1 = struct.pack(">q", 5) + bytes(legacy.build())[8:]
    read = list(fetcher.PartitionRecords(TP, TolerantMemoryRecords(v1), [], 5, None, None, True, 0))
    assert [(r.offset, r.value) for r in read] == [(5, b"L0")]
