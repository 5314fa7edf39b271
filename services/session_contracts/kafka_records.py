"""Fetched batches no consumer of ours is stopped or exhausted by, whatever their producer wrote.

aiokafka's fetcher turns a fetch's bytes into records with its own parser (a C extension),
which two kinds of batch the broker accepts defeat:

- a header name whose bytes are not UTF-8 (the broker never checks; Java decodes it
  leniently): aiokafka raises `UnicodeDecodeError` out of `getmany`, at every fetch of that
  position. The registry's consumer task died (and, restarted, fetched the same batch);
  a gateway stopped reading revocations and went stale (it refused every session).
- a compressed batch that inflates far past its size (the broker limits the compressed size
  only): aiokafka inflates it whole, and a megabyte of zstd is about 30 GB.

`tolerate_hostile_batches` puts `TolerantMemoryRecords` in aiokafka's fetcher (once per
process; `kafka_clients.new_consumer` calls it for every consumer of the project). Then:

- a compressed batch is inflated here, up to `INFLATED_MAX_BYTES`, and handed to aiokafka's
  parser as if never compressed (aiokafka would have inflated it itself: no extra work);
- a batch aiokafka cannot parse is read again leniently, as Java reads it (`read_batch`),
  from the first record aiokafka did not hand over;
- a record whose offset is not within its batch's offsets, past the record before it, is out
  of place: the broker (Kafka 4.1) assigns an uncompressed batch's offsets by rewriting its
  header only, and a record's offset is the header's base plus the delta its producer wrote.
  One record of delta 2^31 - 1 was handed over at that offset, and a consumer's position went
  there: the registry stored it and skipped every later record of the partition, silently (a
  review as an attacker, stop 69). It and the rest of its batch are one placeholder; so is a
  record at an offset that leaves no room for the records after it (the placeholder, at the
  batch's last offset, must come after every record handed over);
- what neither can hand over becomes one placeholder record at the batch's last offset:
  no key, no value, and the reason under `UNREADABLE_HEADER` (`unreadable_reason` reads it).
  The registry dead-letters it with that reason; the records stay on their topic.
- records are parsed `CHUNK` at a time, as the fetcher takes them;
- a fetch stops handing over batches once it has inflated `INFLATED_MAX_BYTES`, a batch
  refused counting for what inflating it took (aiokafka fetches the rest again): a fetch of
  many small bombs takes no more memory, and no more than one bomb's work per `getmany`.

A batch whose CRC fails is another matter: the broker checks every batch's CRC when a producer
sends it, so one failing on the way out was damaged where the broker keeps it (a disk, a
replica's copy), and its records are what its producer sent, only unreadable here. It is never
skipped: `TolerantPartitionRecords` (in the fetcher too) hands over the records before it, and
the next fetch, starting at it, raises `CorruptBatch` out of `getmany`, naming the partition and
the batch's offsets (aiokafka raised at once, named no offset, and lost the records before it
in the same fetch). The registry holds that partition and reads the others on; a gateway goes
stale (fail closed) until the broker serves the batch whole again.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from itertools import islice
from typing import Any

import aiokafka.consumer.fetcher as fetcher
from aiokafka.errors import CorruptRecordException
from aiokafka.record.default_records import DefaultRecordBatch
from aiokafka.record.memory_records import MemoryRecords
from aiokafka.structs import TopicPartition

from session_contracts.record_batches import (
    HEADER,
    INFLATED_MAX_BYTES,
    LenientRecord,
    Unreadable,
    read_batch,
    uncompressed,
)

LOG_APPEND_TIME = 1
"""A record's `timestamp_type` when its timestamp is the broker's append time (the topic's
`message.timestamp.type=LogAppendTime`), not a time its producer chose (0, CreateTime)."""
UNREADABLE_HEADER = "session-control.unreadable-batch"
"""The header of a placeholder record standing for a batch that could not be read."""
UNREADABLE_PREFIX = "unreadable batch (offsets "
"""How a placeholder's reason begins (one that does not is no placeholder)."""
CHUNK = 4096
"""Records parsed from a batch at a time: one of a million empty records (800 KB of zstd) is
handed over as aiokafka hands one over, as the fetcher asks, not built whole first."""
UNREADABLE = (ValueError, IndexError, CorruptRecordException)
"""What aiokafka's parser raises on a batch it cannot read (UnicodeDecodeError is a
ValueError)."""
_LENGTH = struct.Struct(">i")
_LOG_OVERHEAD = 12  # base offset (8) and length (4): a batch's length counts what follows


def unreadable_reason(
    key: bytes | None, value: bytes | None, headers: Sequence[tuple[str, bytes | None]]
) -> str | None:
    """Why the batch a placeholder record stands for could not be read (None: a record).

    A producer can write such a record itself, no key, no value, this header: then it is
    refused with a reason it chose, as its own record, but one beginning `UNREADABLE_PREFIX`
    (counted as `unreadable_batch`, never as another class); nothing else follows from it."""
    if key is not None or value is not None:
        return None
    for name, text in headers:
        if name == UNREADABLE_HEADER and text is not None:
            reason = text.decode("utf-8", errors="replace")
            if reason.startswith(UNREADABLE_PREFIX):
                return reason
    return None


class TolerantBatch:
    """aiokafka's batch, its records inflated within bounds and read leniently if need be."""

    __slots__ = ("_batch", "_index", "_owner", "_records")

    def __init__(self, batch: Any, owner: TolerantMemoryRecords, index: int) -> None:
        self._batch = batch
        self._owner = owner
        self._index = index  # its bytes are framed only when needed
        self._records: Iterator[Any] | None = None

    # what the fetcher reads of every batch, without `__getattr__`'s failed lookup first
    @property
    def is_control_batch(self) -> bool:
        return bool(self._batch.is_control_batch)

    @property
    def next_offset(self) -> int:
        return int(self._batch.next_offset)

    def validate_crc(self) -> bool:
        valid = bool(self._batch.validate_crc())
        if not valid:
            self._owner.corrupt = (self._batch.base_offset, self._batch.next_offset - 1)
        return valid

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)  # base_offset, producer_id, is_transactional, ...

    def __iter__(self) -> Iterator[Any]:
        plain: bytes | None = None
        try:
            batch = self._batch
            if batch.compression_type:
                try:
                    plain = uncompressed(self._owner.raw_batch(self._index))
                except Unreadable as exc:  # a bomb refused took the bound's work: it counts
                    self._owner.inflated(exc.cost)
                    raise
                self._owner.inflated(len(plain))
                batch = DefaultRecordBatch(plain)
            chunk = list(islice(batch, CHUNK))  # aiokafka's parse, in C
        except Unreadable as exc:
            return iter([self._placeholder(exc)])
        except UNREADABLE:
            return self._lenient(plain, 0, self._order(self._count()))
        if len(chunk) < CHUNK:  # all but a batch of thousands of records: whole, in one list
            first, end = self._batch.base_offset, self._batch.next_offset
            if len(chunk) == 1 and first <= chunk[0].offset < end:
                return iter(chunk)  # the usual batch of one record, without an `_Order`
            order = _Order(first, end - 1, len(chunk))
            if (bad := order.first_out(chunk)) is None:
                return iter(chunk)
            return iter([*chunk[:bad], self._placeholder(order.refusal(chunk[bad].offset))])
        # on from where the chunk ended: aiokafka's batch refuses a second `iter()` part-way
        order = self._order(self._count())
        return self._chunks(iter(batch.__next__, None), chunk, plain, order)

    def _order(self, count: int) -> _Order:
        return _Order(self._batch.base_offset, self._batch.next_offset - 1, count)

    def _count(self) -> int:
        """The batch's number of records, from its header."""
        return int(HEADER.unpack_from(self._owner.raw_batch(self._index))[-1])

    def _chunks(
        self, records: Iterator[Any], chunk: list[Any], plain: bytes | None, order: _Order
    ) -> Iterator[Any]:
        handed = 0
        while chunk:
            if (bad := order.first_out(chunk)) is not None:
                yield from chunk[:bad]
                yield self._placeholder(order.refusal(chunk[bad].offset))
                return
            yield from chunk
            handed += len(chunk)
            try:
                chunk = list(islice(records, CHUNK))
            except UNREADABLE:
                yield from self._lenient(plain, handed, order)
                return

    def _lenient(self, plain: bytes | None, handed: int, order: _Order) -> Iterator[Any]:
        """The batch read as Java reads it, past the `handed` records aiokafka read (in
        `order`); from where even that fails, or a record is out of place, one placeholder for
        the rest."""
        try:
            raw = self._owner.raw_batch(self._index) if plain is None else plain
            for record in read_batch(raw, skip=handed):
                if not order.takes(record.offset):
                    yield self._placeholder(order.refusal(record.offset))
                    return
                yield record
        except (Unreadable, *UNREADABLE) as exc:
            yield self._placeholder(exc)

    def __next__(self) -> Any:
        if self._records is None:  # the fetcher reads a control batch's marker by next()
            self._records = iter(self)
        return next(self._records)

    def _placeholder(self, exc: Exception) -> LenientRecord:
        batch = self._batch
        first, last = batch.base_offset, batch.next_offset - 1
        reason = f"{UNREADABLE_PREFIX}{first} to {last}): {exc}"
        return LenientRecord(
            offset=last,  # at or past any position a fetch of this batch starts from
            timestamp=batch.max_timestamp,
            timestamp_type=batch.timestamp_type,
            key=None,
            value=None,
            headers=[(UNREADABLE_HEADER, reason.encode())],
        )


class OutOfPlace(ValueError):
    """A record at an offset its batch's records cannot be at (its producer wrote it)."""


class _Order:
    """Where a batch's next record may be: past the one before it, leaving room for the
    records after it within the batch's last offset. The broker's offsets allow no other
    (compaction leaves gaps, never disorder); a record's offset is the batch's base plus the
    delta its producer wrote, which the broker does not check. The room keeps the placeholder
    for a record out of place, at the last offset, after every record handed over before it:
    the fetcher drops a record below its position (a review: `[0, 2, 1]` handed over 100 and
    102, and the third record vanished without a dead letter)."""

    __slots__ = ("first", "last", "previous", "room")

    def __init__(self, first: int, last: int, count: int) -> None:
        self.first, self.last = first, last
        self.previous = first - 1
        self.room = last - count  # the last offset the next record may take, less one

    def first_out(self, records: Sequence[Any]) -> int | None:
        """The index of the first of `records` (the batch's next ones) out of place, or None;
        moved past those in place."""
        previous = self.previous
        room = start = self.room
        for record in records:
            room += 1
            offset = record.offset
            if not previous < offset <= room:
                self.previous, self.room = previous, room - 1
                return room - start - 1  # its index
            previous = offset
        self.previous, self.room = previous, room
        return None

    def takes(self, offset: int) -> bool:
        """Whether the batch's next record may be at `offset`; moved past it if so."""
        if self.previous < offset <= self.room + 1:
            self.previous, self.room = offset, self.room + 1
            return True
        return False

    def refusal(self, offset: int) -> OutOfPlace:
        """Why a record at `offset` is out of place here."""
        if offset > self.last:
            why = f"past its batch's last offset, {self.last}"
        elif offset > self.room + 1:
            after = self.last - self.room - 1
            why = f"leaving no room for the {after} record(s) after it before {self.last}"
        elif self.previous < self.first:
            why = f"before its batch's first offset, {self.first}"
        else:
            why = f"not past the record before it, at {self.previous}"
        return OutOfPlace(
            f"a record at offset {offset}, out of place: {why}; its producer wrote it"
        )


class TolerantMemoryRecords:
    """aiokafka's `MemoryRecords` over a fetch's bytes, each v2 batch a `TolerantBatch`."""

    __slots__ = ("_data", "_framed", "_inflated", "_read", "_records", "corrupt", "size_in_bytes")

    def __init__(self, bytes_data: bytes) -> None:
        self.corrupt: tuple[int, int] | None = None
        """The first and last offsets of the batch whose CRC failed, once one has."""
        self._records = MemoryRecords(bytes_data)
        self._data = bytes_data
        self._read = 0
        self._inflated = 0
        self._framed = (0, 0)  # the last batch framed, its index and where it starts
        self.size_in_bytes = self._records.size_in_bytes

    def has_next(self) -> bool:
        # past the budget, the rest of the fetch is left to aiokafka's next fetch
        return self._inflated < INFLATED_MAX_BYTES and bool(self._records.has_next())

    def next_batch(self) -> Any:
        batch = self._records.next_batch()
        index, self._read = self._read, self._read + 1
        if not isinstance(batch, DefaultRecordBatch):
            return batch  # None, or message format v0/v1 (no headers; no `magic` either)
        return TolerantBatch(batch, self, index)

    def inflated(self, size: int) -> None:
        """Count a batch's inflated records against the fetch's budget."""
        self._inflated += size

    def raw_batch(self, index: int) -> memoryview:
        """The bytes of the fetch's batch `index` (aiokafka hands out whole batches, in order;
        one batch may be asked for more than once: its count, then its bytes to read it
        leniently)."""
        data = memoryview(self._data)
        framed, start = self._framed if self._framed[0] <= index else (0, 0)
        for _ in range(framed, index):  # from where the last call left off: batches come in order
            start += _LOG_OVERHEAD + _LENGTH.unpack_from(data, start + 8)[0]
        end = start + _LOG_OVERHEAD + _LENGTH.unpack_from(data, start + 8)[0]
        self._framed = (index, start)
        return data[start:end]


class CorruptBatch(CorruptRecordException):  # type: ignore[misc]
    """A fetched batch whose CRC fails: damaged where the broker keeps it (the broker checks
    every batch's CRC when a producer sends it). Raised out of `getmany` once the records
    before it are handed over; its partition's position is the batch's first offset."""

    def __init__(self, tp: TopicPartition, first: int, last: int | None, position: int) -> None:
        self.tp, self.first, self.last = tp, first, last
        self.position = position
        """Where the fetch that met it started: the partition is read past it once a record
        at or after this position is. (`first` and `last` are read from the damaged batch's
        header, which its CRC covers too: for the message only.)"""
        where = f"offsets {first} to {last}" if last is not None else f"offset {first}"
        super().__init__(
            f"the batch at {where} of {tp.topic} partition {tp.partition} fails its CRC check: "
            "damaged where the broker keeps it (its log on disk or a replica's copy), not by "
            "its producer (the broker checks CRCs when a batch is produced)"
        )


class TolerantPartitionRecords(fetcher.PartitionRecords):  # type: ignore[misc]
    """aiokafka's records of one partition's fetch, which stop before a batch whose CRC fails
    (the records before it handed over, the position left at it) and raise `CorruptBatch` only
    when that batch comes first: aiokafka raised at once, and the records it had taken from
    the fetch before it, of this partition and of the others in the same `getmany`, were
    never handed over while their positions had moved past them."""

    def _unpack_records(self) -> Iterator[Any]:
        started = self.next_fetch_offset
        try:
            yield from super()._unpack_records()
        except CorruptRecordException:
            if self.next_fetch_offset != started:
                return  # what came before is handed over; the next fetch starts here
            found = getattr(self._records, "corrupt", None)
            first, last = found if found is not None else (started, None)
            raise CorruptBatch(self._tp, first, last, started) from None


def tolerate_hostile_batches() -> None:
    """Have aiokafka's fetcher read batches through `TolerantMemoryRecords` and
    `TolerantPartitionRecords` (idempotent)."""
    current = getattr(fetcher, "MemoryRecords", None)
    if current is TolerantMemoryRecords:
        return
    if current is not MemoryRecords:  # an aiokafka that no longer reads batches this way
        raise RuntimeError(f"aiokafka's fetcher reads batches with {current!r}: not patched")
    fetcher.MemoryRecords = TolerantMemoryRecords
    fetcher.PartitionRecords = TolerantPartitionRecords
