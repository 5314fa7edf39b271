"""A Kafka record batch (message format v2) read from its bytes, as the broker took it.

Two readings aiokafka's own parser does not offer: `read_batch` decodes a header name whose
bytes are not UTF-8 as Java does (U+FFFD for what is not), where aiokafka raises; `inflate`
decompresses a batch's records only up to `INFLATED_MAX_BYTES`, where aiokafka inflates them
whole. The broker limits a batch by its compressed size (`max.message.bytes`, 1 MB by
default), and a megabyte of zeros in zstd is about 30 GB: one record could take every
consumer's memory.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import cramjam
from aiokafka.codec import _detect_xerial_stream, snappy_decode
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBase
from aiokafka.record.util import decode_varint

HEADER = DefaultRecordBase.HEADER_STRUCT
"""The batch's 61 bytes before its records (the last field is the records' count)."""
ATTRIBUTES_AT = DefaultRecordBase.ATTRIBUTES_OFFSET
CODEC_MASK = DefaultRecordBase.CODEC_MASK
CODECS = {1: "gzip", 2: "snappy", 3: "lz4", 4: "zstd"}
INFLATED_MAX_BYTES = 32 * 1024 * 1024
"""The most a batch's records may take once decompressed: 32 times the broker's default
`max.message.bytes`. A batch of JSON events inflates 5 to 10 times."""
_FIRST_GUESS_RATIO = 8  # a batch of JSON events inflates 5 to 10 times
_FIRST_GUESS_BYTES = 4096
_GROWTH = 4
_GZIP_WINDOW = 4096
_GZIP_MAGIC = b"\x1f\x8b"
_XERIAL_HEADER_BYTES = 16
_BLOCK_LENGTH = struct.Struct(">i")


class Unreadable(Exception):
    """A batch no reading of ours can hand over: the reason, for a dead letter, and about how
    many bytes inflating it took before it was refused (`cost`)."""

    def __init__(self, reason: str, cost: int = 0) -> None:
        super().__init__(reason)
        self.cost = cost


@dataclass(frozen=True, slots=True)
class LenientRecord:
    """One record as aiokafka's fetcher reads it (`PartitionRecords._consumer_record`)."""

    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    checksum: None = None


def read_batch(batch: bytes | memoryview, skip: int = 0) -> Iterator[LenientRecord]:
    """Each record of one v2 batch after its first `skip`, as it is read, header names decoded
    with U+FFFD for bytes not UTF-8 (raises `CorruptRecordException`, `ValueError` or
    `IndexError` where it cannot read on, `Unreadable` past `INFLATED_MAX_BYTES`).

    The records skipped are stepped over by their lengths, not read: the caller read them
    already (aiokafka's parser, before it failed). Read and dropped, a million of them took
    8.5 s of the event loop in one step (a review, stop 69)."""
    (
        base_offset,
        _length,
        _epoch,
        _magic,
        _crc,
        attributes,
        _last_delta,
        first_timestamp,
        max_timestamp,
        *_producer,
        count,
    ) = HEADER.unpack_from(batch)
    body: bytes | memoryview = memoryview(batch)[HEADER.size :]
    if attributes & CODEC_MASK:
        body = inflate(attributes & CODEC_MASK, body)
    log_append = attributes & DefaultRecordBase.TIMESTAMP_TYPE_MASK
    pos = 0
    skip = max(0, min(skip, count))
    for _ in range(skip):
        length, pos = decode_varint(body, pos)
        if length < 0:
            raise CorruptRecordException(f"a record of {length} bytes")
        pos += length
    for _ in range(count - skip):
        length, pos = decode_varint(body, pos)
        start = pos
        _attributes, pos = decode_varint(body, pos)
        timestamp_delta, pos = decode_varint(body, pos)
        offset_delta, pos = decode_varint(body, pos)
        key, pos = _nullable_bytes(body, pos)
        value, pos = _nullable_bytes(body, pos)
        header_count, pos = decode_varint(body, pos)
        if header_count < 0:
            raise CorruptRecordException(f"invalid number of record headers {header_count}")
        headers = []
        for _ in range(header_count):
            name, pos = _nullable_bytes(body, pos)
            if name is None:
                raise CorruptRecordException("a header without a name")
            header_value, pos = _nullable_bytes(body, pos)
            headers.append((name.decode("utf-8", errors="replace"), header_value))
        if pos - start != length:
            raise CorruptRecordException(f"record of {length} bytes read as {pos - start}")
        timestamp = max_timestamp if log_append else first_timestamp + timestamp_delta
        yield LenientRecord(
            offset=base_offset + offset_delta,
            timestamp=timestamp,  # -1 for none, as aiokafka's parser gives it
            timestamp_type=1 if log_append else 0,
            key=key,
            value=value,
            headers=headers,
        )
    if pos != len(body):
        raise CorruptRecordException(f"{len(body) - pos} bytes after the last record")


def _nullable_bytes(body: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(body, pos)
    if size < 0:
        return None, pos
    end = pos + size
    if end > len(body):
        raise CorruptRecordException(f"{size} bytes announced, {len(body) - pos} left")
    return bytes(body[pos:end]), end


def uncompressed(batch: bytes | memoryview) -> bytes:
    """The same batch with its records decompressed (`inflate`), as aiokafka reads one that
    was never compressed. Its CRC is the original's: checked before, on the original."""
    attributes = batch[ATTRIBUTES_AT + 1]  # the codec is in the low byte of the big-endian int16
    head = bytearray(batch[: HEADER.size])
    head[ATTRIBUTES_AT + 1] = attributes & ~CODEC_MASK & 0xFF
    return bytes(head) + inflate(attributes & CODEC_MASK, memoryview(batch)[HEADER.size :])


def inflate(codec: int, data: bytes | memoryview, limit: int = INFLATED_MAX_BYTES) -> bytes:
    """`data` decompressed with the batch's `codec`, or `Unreadable` if it takes more than
    `limit` bytes (found without inflating much past it) or cannot be decompressed."""
    name = CODECS.get(codec)
    if name is None:
        raise Unreadable(f"unknown compression codec {codec:#04x}")
    try:
        return _INFLATERS[codec](data, limit)
    except Unreadable:
        raise
    except Exception as exc:  # where it failed is not known: counted as the bound's work
        raise _corrupt(name, exc, limit) from None


def _too_large(limit: int) -> Unreadable:
    return Unreadable(f"its records decompress to more than {limit} bytes", cost=limit)


def _corrupt(codec: str, exc: Exception, cost: int) -> Unreadable:
    return Unreadable(f"its {codec} records cannot be decompressed: {exc}", cost=cost)


def _gunzip(data: bytes | memoryview, limit: int) -> bytes:
    # one gzip member after another, as aiokafka's gzip_decode (GzipFile) reads them: the first
    # given all the input at once (a producer writes one), any next one a few KiB at a time, as
    # what zlib leaves after a member's end is a copy (quadratic in 50,000 empty members)
    # (after the first member, bytes that do not begin another are ignored, as Java's
    # GZIPInputStream ignores them: the broker's validation reads the batch so)
    view, parts, taken, at, window = memoryview(data), [], 0, 0, len(data)
    while at < len(view) and (at == 0 or view[at : at + 2] == _GZIP_MAGIC):
        member = zlib.decompressobj(wbits=31)
        while not member.eof:
            if at >= len(view):
                raise Unreadable("its gzip records end part-way through", cost=taken)
            given = view[at : at + window]
            try:
                part = member.decompress(given, limit - taken + 1)  # stops past `limit`
            except zlib.error as exc:
                raise _corrupt("gzip", exc, taken) from None
            taken += len(part)
            if taken > limit:
                raise _too_large(limit)
            parts.append(part)
            at += len(given) - (len(member.unused_data) if member.eof else 0)
        window = _GZIP_WINDOW
    return b"".join(parts)


def _unsnappy(data: bytes | memoryview, limit: int) -> bytes:
    view = memoryview(data)
    # the decoder's own test of a xerial stream: the lengths summed are those it inflates
    if _detect_xerial_stream(view):
        total, at = 0, _XERIAL_HEADER_BYTES
        while at < len(view):  # every block says what it inflates to, before inflating
            (size,) = _BLOCK_LENGTH.unpack_from(view, at)
            if size < 0 or at + 4 + size > len(view):  # -4 looped here for good
                raise Unreadable(f"its snappy block at byte {at} announces {size} bytes")
            total += cramjam.snappy.decompress_raw_len(view[at + 4 : at + 4 + size])
            at += 4 + size
    else:
        total = cramjam.snappy.decompress_raw_len(view)
    if total > limit:
        raise _too_large(limit)
    try:
        inflated: bytes = snappy_decode(bytes(view))
    except Exception as exc:
        raise _corrupt("snappy", exc, total) from None
    return inflated


def _into(codec: str, decompress_into: Callable[[bytes, bytearray], int]) -> Callable[..., bytes]:
    def inflate_into(data: bytes | memoryview, limit: int) -> bytes:
        source = bytes(data)
        size = min(limit, max(_FIRST_GUESS_BYTES, _FIRST_GUESS_RATIO * len(source)))
        while True:
            out = bytearray(size)
            try:  # stops as soon as `out` is full: a bomb costs `out`, no more
                return bytes(memoryview(out)[: decompress_into(source, out)])
            except cramjam.DecompressionError as exc:
                if "whole buffer" not in str(exc):  # corrupt, not too large
                    raise _corrupt(codec, exc, size) from None
                if size >= limit:
                    raise _too_large(limit) from None
            # a ratio above the guess: again, with room for four times as much (the work
            # thrown away adds up to a third of the last attempt's at most)
            size = min(limit, size * _GROWTH)

    return inflate_into


_INFLATERS: dict[int, Callable[[bytes | memoryview, int], bytes]] = {
    1: _gunzip,
    2: _unsnappy,
    3: _into("lz4", cramjam.lz4.decompress_into),
    4: _into("zstd", cramjam.zstd.decompress_into),
}
