"""Fetched records no consumer of ours is stopped by: header names that are not UTF-8.

A record header's name is a string on the wire, but the broker never checks that its bytes
are UTF-8 (Java decodes it leniently, replacing what is not). aiokafka's record parser (its C
extension) decodes it strictly and raises `UnicodeDecodeError` out of `getmany`, before any
record of the fetch is handed over, at every fetch of that position. So any principal allowed
to write a topic could stop its consumers with one record: the registry's consumer task died
(the process exited, and restarted into the same record) and a gateway stopped reading
revocations (its view went stale: it refused every session).

`tolerate_unreadable_header_names` puts `TolerantMemoryRecords` in aiokafka's fetcher (once
per process; every consumer `kafka_clients.new_consumer` builds calls it). Each batch is
parsed by aiokafka first, whole; only a batch it fails on is parsed again here, the way the
Java client reads it: a header name's bytes that are not UTF-8 become U+FFFD. A batch this
parse fails on too raises aiokafka's own error, as before.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import aiokafka.consumer.fetcher as fetcher
from aiokafka.codec import gzip_decode, lz4_decode, snappy_decode, zstd_decode
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBase
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.record.util import decode_varint

_HEADER = DefaultRecordBase.HEADER_STRUCT
_LENGTH = struct.Struct(">i")
_LOG_OVERHEAD = 12  # base offset (8) and length (4) before each batch's length counts
_DECODERS = {
    DefaultRecordBase.CODEC_GZIP: gzip_decode,
    DefaultRecordBase.CODEC_SNAPPY: snappy_decode,
    DefaultRecordBase.CODEC_LZ4: lz4_decode,
    DefaultRecordBase.CODEC_ZSTD: zstd_decode,
}
UNREADABLE = (ValueError, IndexError, CorruptRecordException)
"""What aiokafka's parser raises on a batch it cannot read (UnicodeDecodeError is a
ValueError)."""


@dataclass(frozen=True, slots=True)
class LenientRecord:
    """One record as aiokafka's fetcher reads it (`_consumer_record`)."""

    offset: int
    timestamp: int
    timestamp_type: int
    key: bytes | None
    value: bytes | None
    headers: list[tuple[str, bytes | None]]
    checksum: None = None


def read_batch(batch: bytes | memoryview) -> list[LenientRecord]:
    """Every record of one v2 batch, header names decoded with U+FFFD for bytes not UTF-8."""
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
    ) = _HEADER.unpack_from(batch)
    body: bytes | memoryview = memoryview(batch)[_HEADER.size :]
    codec = attributes & DefaultRecordBase.CODEC_MASK
    if codec:
        decode = _DECODERS.get(codec)
        if decode is None:
            raise CorruptRecordException(f"unknown compression codec {codec:#04x}")
        body = decode(bytes(body))
    log_append = attributes & DefaultRecordBase.TIMESTAMP_TYPE_MASK
    timestamp_type = 1 if log_append else 0
    records, pos = [], 0
    for _ in range(count):
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
        records.append(
            LenientRecord(
                offset=base_offset + offset_delta,
                timestamp=max_timestamp if log_append else first_timestamp + timestamp_delta,
                timestamp_type=timestamp_type,
                key=key,
                value=value,
                headers=headers,
            )
        )
    if pos != len(body):
        raise CorruptRecordException(f"{len(body) - pos} bytes after the last record")
    return records


def _nullable_bytes(body: bytes | memoryview, pos: int) -> tuple[bytes | None, int]:
    size, pos = decode_varint(body, pos)
    if size < 0:
        return None, pos
    end = pos + size
    if end > len(body):
        raise CorruptRecordException(f"{size} bytes announced, {len(body) - pos} left")
    return bytes(body[pos:end]), end


class TolerantBatch:
    """aiokafka's batch, whose records are read again leniently if aiokafka cannot read them."""

    __slots__ = ("_batch", "_index", "_owner", "_records")

    def __init__(self, batch: Any, owner: TolerantMemoryRecords, index: int) -> None:
        self._batch = batch
        self._owner = owner
        self._index = index  # framed again only if needed: a failed parse is rare
        self._records: Iterator[Any] | None = None

    # what the fetcher reads of a batch, without `__getattr__`'s failed lookup first
    @property
    def is_control_batch(self) -> bool:
        return bool(self._batch.is_control_batch)

    @property
    def next_offset(self) -> int:
        return int(self._batch.next_offset)

    def validate_crc(self) -> bool:
        return bool(self._batch.validate_crc())

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)  # base_offset, producer_id, is_transactional, ...

    def __iter__(self) -> Iterator[Any]:
        try:
            records: list[Any] = list(self._batch)  # aiokafka's parse, in C, whole
        except UNREADABLE as exc:
            try:
                records = list(read_batch(self._owner.raw_batch(self._index)))
            except UNREADABLE:
                raise exc from None  # unreadable either way: aiokafka's error, as before
        return iter(records)

    def __next__(self) -> Any:
        if self._records is None:  # the fetcher reads a control batch's marker by next()
            self._records = iter(self)
        return next(self._records)


class TolerantMemoryRecords:
    """aiokafka's `MemoryRecords` over a fetch's bytes, each v2 batch a `TolerantBatch`."""

    __slots__ = ("_data", "_framed", "_read", "_records", "has_next", "size_in_bytes")

    def __init__(self, bytes_data: bytes) -> None:
        self._records = MemoryRecords(bytes_data)
        self._data = bytes_data
        self._read = 0
        self._framed = (0, 0)  # the index of a batch and where it starts, once one is framed
        # aiokafka's own, called without a frame of ours in between
        self.has_next: Callable[[], bool] = self._records.has_next
        self.size_in_bytes: Callable[[], int] = self._records.size_in_bytes

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        index, self._read = self._read, self._read + 1
        if batch is None or batch.magic < 2:
            return batch  # message format v0/v1: no headers
        return TolerantBatch(batch, self, index)

    def raw_batch(self, index: int) -> memoryview:
        """The bytes of the fetch's batch `index` (aiokafka hands out whole batches, in order)."""
        data = memoryview(self._data)
        framed, start = self._framed if self._framed[0] <= index else (0, 0)
        for _ in range(framed, index):  # from where the last call left off: batches come in order
            start += _LOG_OVERHEAD + _LENGTH.unpack_from(data, start + 8)[0]
        end = start + _LOG_OVERHEAD + _LENGTH.unpack_from(data, start + 8)[0]
        self._framed = (index + 1, end)
        return data[start:end]


def tolerate_unreadable_header_names() -> None:
    """Have aiokafka's fetcher read batches through `TolerantMemoryRecords` (idempotent)."""
    current = getattr(fetcher, "MemoryRecords", None)
    if current is TolerantMemoryRecords:
        return
    if current is not MemoryRecords:  # an aiokafka that no longer reads batches this way
        raise RuntimeError(f"aiokafka's fetcher reads batches with {current!r}: not patched")
    fetcher.MemoryRecords = TolerantMemoryRecords
