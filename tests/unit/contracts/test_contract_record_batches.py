"""A batch's records are inflated only up to a bound, whatever the codec: a compressed batch the
broker takes by its compressed size may decompress to thousands of times that."""

from __future__ import annotations

import gzip
import tracemalloc
from collections.abc import Callable

import pytest
from aiokafka.codec import gzip_encode, lz4_encode, snappy_encode, zstd_encode
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import _DefaultRecordBatchBuilderPy
from aiokafka.record.util import decode_varint

from session_contracts.record_batches import (
    HEADER,
    INFLATED_MAX_BYTES,
    Unreadable,
    inflate,
    read_batch,
)

LIMIT = 1 << 20
CODECS: dict[str, tuple[int, Callable[[bytes], bytes]]] = {
    "gzip": (1, gzip_encode),
    "snappy (xerial blocks)": (2, lambda data: bytes(snappy_encode(data, xerial_compatible=True))),
    "snappy (raw)": (2, lambda data: bytes(snappy_encode(data, xerial_compatible=False))),
    "lz4": (3, lz4_encode),
    "zstd": (4, zstd_encode),
}


def _payload(size: int) -> bytes:
    line = b'{"type":"session.activity","session_id":"0123456789abcdef"}\n'
    return (line * (size // len(line) + 1))[:size]


@pytest.mark.parametrize("codec", CODECS)
def test_records_up_to_the_bound_are_inflated_and_past_it_refused(codec: str) -> None:
    number, encode = CODECS[codec]
    exact = _payload(LIMIT)
    assert inflate(number, encode(exact), LIMIT) == exact
    small = _payload(1000)
    assert inflate(number, encode(small), LIMIT) == small
    with pytest.raises(Unreadable, match=f"decompress to more than {LIMIT} bytes"):
        inflate(number, encode(_payload(LIMIT + 1)), LIMIT)


@pytest.mark.parametrize("codec", CODECS)
def test_corrupt_records_are_refused_naming_the_codec(codec: str) -> None:
    number, encode = CODECS[codec]
    compressed = encode(_payload(100_000))
    with pytest.raises(
        Unreadable, match=r"cannot be decompressed|end part-way|more than|announces"
    ):
        inflate(number, compressed[: len(compressed) // 2] + b"\x00" * 7, LIMIT)


def test_gzip_members_one_after_another_are_read_as_aiokafka_reads_them() -> None:
    assert inflate(1, gzip.compress(b"one ") + gzip.compress(b"two"), LIMIT) == b"one two"


def test_gzip_of_many_empty_members_is_read_whole() -> None:
    """Each member's rest was copied before the next was read: quadratic in the members."""
    empty = gzip.compress(b"")
    assert inflate(1, gzip.compress(b"start ") + empty * 50_000 + gzip.compress(b"end"), LIMIT) == (
        b"start end"
    )


@pytest.mark.parametrize("length", [-4, -1, 1 << 30])
def test_a_snappy_block_announcing_an_impossible_length_is_refused(length: int) -> None:
    """A block length of -4 sent the walk over the blocks' lengths back where it was, for good."""
    xerial = b"\x82SNAPPY\x00" + (1).to_bytes(4, "big") + (1).to_bytes(4, "big")
    with pytest.raises(Unreadable, match="snappy block at byte 16 announces"):
        inflate(2, xerial + length.to_bytes(4, "big", signed=True) + b"\x00" * 8, LIMIT)


def test_bytes_after_the_last_gzip_member_are_ignored_as_java_ignores_them() -> None:
    """They began a member that was not one: readable records became an unreadable batch."""
    one = gzip.compress(b"records")
    assert inflate(1, one + b"\x00\x00", LIMIT) == b"records"
    assert inflate(1, one + one + b"garbage", LIMIT) == b"recordsrecords"
    with pytest.raises(Unreadable, match="cannot be decompressed"):
        inflate(1, b"\x00\x00" + one, LIMIT)  # no member at all


@pytest.mark.parametrize("codec", CODECS)
def test_what_refusing_a_batch_took_is_said_with_the_refusal(codec: str) -> None:
    number, encode = CODECS[codec]
    with pytest.raises(Unreadable) as too_large:
        inflate(number, encode(_payload(LIMIT + 1)), LIMIT)
    assert too_large.value.cost == LIMIT
    compressed = encode(_payload(100_000))
    with pytest.raises(Unreadable) as corrupt:
        inflate(number, compressed[: len(compressed) // 2] + b"\x00" * 7, LIMIT)
    assert 0 <= corrupt.value.cost <= LIMIT


def test_an_unknown_codec_is_refused() -> None:
    with pytest.raises(Unreadable, match="unknown compression codec 0x05"):
        inflate(5, b"anything", LIMIT)


@pytest.mark.parametrize("codec", ["gzip", "lz4", "zstd"])
def test_a_bomb_is_refused_holding_no_more_than_the_bound(codec: str) -> None:
    """A gigabyte of zeros in a few kilobytes (zstd frames one after another): aiokafka
    inflated it whole, in every consumer, for each fetch of it."""
    number, encode = CODECS[codec]
    chunk = encode(b"\x00" * (64 << 20))
    bomb = chunk * 16  # 1 GiB once inflated
    assert len(bomb) < 5 << 20
    tracemalloc.start()
    try:
        with pytest.raises(Unreadable, match="decompress to more than"):
            inflate(number, bomb)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * INFLATED_MAX_BYTES + 4 * len(bomb)  # zlib's output, then its bytes


@pytest.mark.parametrize("skip", [0, 1, 3, 5, 9])
def test_records_skipped_are_stepped_over_by_their_lengths_not_read(skip: int) -> None:
    """The lenient reader steps over the records aiokafka handed over before it failed: read
    and dropped, a million of them took 8.5 s of the event loop in one step (a review, stop
    69). A record skipped is not read: one whose header count is -1 is stepped over."""
    builder = _DefaultRecordBatchBuilderPy(2, 0, 0, -1, -1, -1, 1 << 20)
    for n in range(5):
        builder.append(n, 1_700_000_000_000 + n, b"k", f"v{n}".encode(), [])
    raw = bytearray(builder.build())
    whole = list(read_batch(bytes(raw)))
    assert [r.value for r in read_batch(bytes(raw), skip=skip)] == [r.value for r in whole[skip:]]
    length, at = decode_varint(raw, HEADER.size)  # the first record's length, and where it starts
    raw[at + length - 1] = 0x01  # its header count, its last byte: -1
    with pytest.raises(CorruptRecordException, match="invalid number of record headers"):
        list(read_batch(bytes(raw)))
    if skip:
        assert [r.offset for r in read_batch(bytes(raw), skip=skip)] == list(range(skip, 5))
