"""One polled batch, exactly once: fence, dead-letter, project, store positions, in one transaction.

The stored position is the truth. Records below it were applied already (a redelivery after a
crash, or a partition that moved to another registry and back) and are skipped; the new
positions are written in the same transaction as the rows they produced.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import itertools
import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from operator import attrgetter
from typing import Any, Protocol

from sqlalchemy.exc import SQLAlchemyError

from read_model.store import Store
from read_model.unit_of_work import UnitOfWork, caused_by_data
from session_contracts.codec import COMMANDS, EVENTS, DecodeError, decode_each_or
from session_contracts.escaping import escape_reason
from session_contracts.handles import is_v1_key_of, record_key
from session_contracts.kafka_records import LOG_APPEND_TIME, unreadable_reason
from session_contracts.models import (
    SessionCreated,
    SessionEvent,
    SessionExpired,
    TerminateSessions,
)
from session_contracts.record_signing import SignedExpiries
from session_contracts.tracing import RecordHeaders
from session_registry.adapters.command_store import record_failed
from session_registry.adapters.dead_letters import DeadLetter, DeadLetterSink, copied_headers
from session_registry.adapters.positions import lock_positions, save_positions
from session_registry.service_layer.projection import Outcome, Projector

TopicPartitionKey = tuple[str, int]
DECODE_SLICE = 200
"""Records decoded between two yields to the event loop (under 1 ms of decoding). The batch
being written makes a dozen round trips to the database, each resumed only when decoding
yields: with slices of 2,000 records (8 ms) its statements waited out most of the next
batch's decoding, and the registry idled while they ran afterwards (one instance 75.7k
against 89.3k events/s with 200, median of 3 interleaved rounds, 302,938 events)."""

log = logging.getLogger(__name__)
_partition_of = attrgetter("topic", "partition")
_offset_of = attrgetter("offset")
_value_of = attrgetter("value")


class Record(Protocol):
    """What the ingestor reads of a Kafka record (aiokafka's ConsumerRecord has it); read-only,
    so a frozen dataclass or a named tuple is one too."""

    @property
    def topic(self) -> str: ...
    @property
    def partition(self) -> int: ...
    @property
    def offset(self) -> int: ...
    @property
    def key(self) -> bytes | None: ...
    @property
    def value(self) -> bytes | None: ...
    @property
    def headers(self) -> RecordHeaders: ...
    @property
    def timestamp(self) -> int: ...
    @property
    def timestamp_type(self) -> int: ...


NOTICED_AHEAD = timedelta(seconds=1)
"""A creation dated this much or less after its append is clamped but not counted: a producer's
clock milliseconds ahead (NTP keeps hosts within tens of them) would otherwise count nearly every
sign-in it makes, and raise `RegistryCreationsDatedAhead` for good."""


@dataclass
class Decoded:
    """A batch's records of one partition, decoded (outside the transaction)."""

    offsets: list[int] = field(default_factory=list)
    messages: list[SessionEvent | TerminateSessions | DeadLetter] = field(default_factory=list)
    records: list[Record | None] = field(default_factory=list)
    """The records themselves (a dead letter of a record the database refuses copies them)."""
    dated_ahead: list[int] = field(default_factory=list)
    """Offsets of creations dated after their record's append time (`created_by_append_time`)."""
    producer_dated: bool | None = None
    """Whether the last event record decoded was dated by its producer (CreateTime)."""


@dataclass
class IngestOutcome(Outcome):
    """What one batch did, with the positions it stored."""

    dead_letters: int = 0
    skipped: int = 0
    positions: dict[TopicPartitionKey, int] = field(default_factory=dict)
    event_types: dict[str, int] = field(default_factory=dict)
    """Events applied, per type (for the metrics)."""
    dead_letter_reasons: list[str] = field(default_factory=list)
    miskeyed: dict[str, int] = field(default_factory=dict)
    """Records applied whose Kafka key is not the one the contract gives their value, per kind
    (`event`, `command`): applied all the same (`_keyed_as_v1` says why)."""
    first_miskeyed: str | None = None
    """Where the first of them is, `topic:partition:offset` (never its key)."""
    commands_failed: int = 0
    """Termination commands dead-lettered: given up after their application failed by itself
    (`record_given_up`), or refused as they were read."""
    dated_ahead: int = 0
    """Creations applied that were dated after the broker appended them (taken as created then)."""
    first_dated_ahead: str | None = None
    """The first of them: `tenant <t>, session <handle>, at topic:partition:offset`."""
    producer_dated: bool | None = None
    """Whether the batch's last event record was dated by its producer (CreateTime), not the
    broker; None without events."""
    seconds: float = 0.0
    """How long the batch's transaction took (set by the consumer loop)."""


def _dead_letter(record: Record, reason: str) -> DeadLetter:
    # a placeholder for a batch the consumer could not read says why, better than "no value"
    unreadable = unreadable_reason(record.key, record.value, record.headers)
    if unreadable is not None:
        reason = escape_reason(unreadable)
    return DeadLetter(
        topic=record.topic,
        partition=record.partition,
        offset=record.offset,
        key=record.key,
        value=record.value,
        headers=copied_headers(record.headers),
        reason=reason,
    )


_RECORD_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError)
"""Errors of Python itself that a record can provoke in the fold or the projection: a bug one
record triggers (a `requested_at` in year 1 minus a grace once overflowed). Applied again, the
batch fails the same way, so it is split as for a record the database refuses."""


def caused_by_a_record(exc: BaseException) -> bool:
    """Whether applying the batch again would fail the same way: the database refused a value
    (`caused_by_data`), or Python raised one of `_RECORD_ERRORS` outside the database driver and
    the network (connectivity, locks and timeouts are waited out and retried)."""
    if caused_by_data(exc):
        return True
    return isinstance(exc, _RECORD_ERRORS) and not isinstance(exc, SQLAlchemyError | OSError)


def refusal(exc: BaseException) -> str:
    """The dead letter's reason for a record `caused_by_a_record` says failed by itself."""
    if caused_by_data(exc):
        cause = getattr(exc, "orig", None) or exc
        return escape_reason(f"the database refused it: {type(cause).__name__}: {cause}")
    return escape_reason(f"the registry could not apply it: {type(exc).__name__}: {exc}")


async def record_given_up(
    uow: UnitOfWork, command: TerminateSessions, now: datetime, terminated: int
) -> None:
    """Record a command given up (`command_store.record_failed`: its status says `failed`),
    in a savepoint: what made the command fail may make its row fail too (a value the database
    refuses), and the transaction that dead-letters it must still commit. Such a command stays
    `pending`, as every command given up did before revision 1601."""
    try:
        async with uow.conn.begin_nested():
            await record_failed(uow, command, now, terminated)
    except Exception as exc:
        if not caused_by_a_record(exc):
            raise
        log.warning(
            "termination command given up could not be recorded failed: %s",
            refusal(exc),
            extra={"tenant_id": command.tenant_id, "command_id": str(command.command_id)},
        )


Item = tuple[
    TopicPartitionKey,
    int,
    "SessionEvent | TerminateSessions | DeadLetter",
    "Record | None",
    bool,
    "bool | None",
]
"""One decoded record: where it is, what it holds, the record, whether it is a creation dated
ahead of its append time (`Decoded.dated_ahead`), and its partition's `producer_dated`."""


def _items(decoded: dict[TopicPartitionKey, Decoded]) -> list[Item]:
    items: list[Item] = []
    for tp, part in decoded.items():
        records: list[Record | None] = part.records or [None] * len(part.offsets)
        ahead = set(part.dated_ahead)
        for offset, message, record in zip(part.offsets, part.messages, records, strict=True):
            items.append((tp, offset, message, record, offset in ahead, part.producer_dated))
    return items


def _regroup(items: Sequence[Item]) -> dict[TopicPartitionKey, Decoded]:
    """`items` by partition again, with their creations dated ahead and who dated the events:
    counted, named and gauged when a batch is applied by halves too (they were lost there:
    reviews, stop 71)."""
    decoded: dict[TopicPartitionKey, Decoded] = {}
    for tp, offset, message, record, ahead, producer_dated in items:
        part = decoded.setdefault(tp, Decoded(producer_dated=producer_dated))
        part.offsets.append(offset)
        part.messages.append(message)
        part.records.append(record)
        if ahead:
            part.dated_ahead.append(offset)
    return decoded


def _add(total: IngestOutcome, part: IngestOutcome) -> IngestOutcome:
    for counted in fields(Outcome):  # the projection's counts
        setattr(total, counted.name, getattr(total, counted.name) + getattr(part, counted.name))
    total.dead_letters += part.dead_letters
    total.skipped += part.skipped
    for kind, count in part.event_types.items():
        total.event_types[kind] = total.event_types.get(kind, 0) + count
    total.dead_letter_reasons.extend(part.dead_letter_reasons)
    for kind, count in part.miskeyed.items():
        total.miskeyed[kind] = total.miskeyed.get(kind, 0) + count
    total.first_miskeyed = total.first_miskeyed or part.first_miskeyed
    total.dated_ahead += part.dated_ahead
    total.first_dated_ahead = total.first_dated_ahead or part.first_dated_ahead
    total.commands_failed += part.commands_failed
    if part.producer_dated is not None:
        total.producer_dated = part.producer_dated
    for tp, position in part.positions.items():
        total.positions[tp] = max(total.positions.get(tp, 0), position)
    return total


class Ingestor:
    """Applies polled batches to the read model under a consumer name."""

    def __init__(
        self,
        store: Store,
        projector: Projector,
        consumer: str,
        dead_letters: DeadLetterSink,
        clock: Callable[[], datetime],
        expiries: SignedExpiries | None = None,
    ) -> None:
        self._store = store
        self._expiries = expiries
        """With it, a `session.expired` the registry did not sign is dead-lettered."""
        self._projector = projector
        self._consumer = consumer
        self._dead_letters = dead_letters
        self._clock = clock
        self._commands_topic = projector.topics.commands
        self._told_producer_dated = False
        self._letters_sent: set[tuple[str, int, int]] = set()
        """Where the dead letters sent whose positions are not committed yet came from: a
        transaction run again (a lock, a deadlock, a commit refused, a batch applied again by
        halves or re-read from its stored positions) sends none of them twice (found by a
        review, 2026-12-06). Forgotten once a transaction reads its partition's stored
        position past them; a crash between the send and the commit still sends one again."""

    def decode(self, batch: Mapping[Any, Sequence[Record]]) -> dict[TopicPartitionKey, Decoded]:
        """Decode every record; a bad one becomes a dead letter in its place."""
        decoded: dict[TopicPartitionKey, Decoded] = {}
        for records in batch.values():
            self._decode_into(decoded, records)
        return decoded

    async def decode_yielding(
        self, batch: Mapping[Any, Sequence[Record]], every: int = DECODE_SLICE
    ) -> dict[TopicPartitionKey, Decoded]:
        """`decode`, letting other tasks run every `every` records.

        While a batch is decoded the previous one is being written: yielding lets its writer
        send the next statement, so the database works while Python decodes. Each of the
        writer's round trips waits for the next yield, so the slice is kept short
        (`DECODE_SLICE`).
        """
        decoded: dict[TopicPartitionKey, Decoded] = {}
        for records in batch.values():
            for start in range(0, len(records), every):
                self._decode_into(decoded, records[start : start + every])
                await asyncio.sleep(0)
        return decoded

    def _decode_into(
        self, decoded: dict[TopicPartitionKey, Decoded], records: Sequence[Record]
    ) -> None:
        # getmany hands records over per partition: one run each, decoded in one call
        for tp, grouped in itertools.groupby(records, _partition_of):
            run = list(grouped)
            part = decoded.get(tp)
            if part is None:
                part = decoded[tp] = Decoded()
            part.offsets.extend(map(_offset_of, run))
            part.records.extend(run)
            values = map(_value_of, run)

            def dead_letter(index: int, error: DecodeError, run: list[Record] = run) -> DeadLetter:
                return _dead_letter(run[index], error.reason)

            if tp[0] == self._commands_topic:
                part.messages.extend(decode_each_or(COMMANDS, values, dead_letter))
            else:
                events = decode_each_or(EVENTS, values, dead_letter)
                if self._expiries is not None:
                    self._refuse_unsigned(run, events)
                part.dated_ahead.extend(created_by_append_time(run, events))
                part.messages.extend(events)
                part.producer_dated = run[-1].timestamp_type != LOG_APPEND_TIME
                if part.producer_dated and not self._told_producer_dated:
                    self._told_producer_dated = True
                    log.warning(
                        "%s holds records dated by their producer (CreateTime): a creation "
                        "dated ahead stays out of terminations by filter until that date; set "
                        "the topic's message.timestamp.type=LogAppendTime (docs/operations.md)",
                        escape_reason(tp[0]),
                    )

    def _refuse_unsigned(self, run: Sequence[Record], events: list[Any]) -> None:
        """Dead-letter, in place, each `session.expired` the registry did not sign: only it
        writes them (`session_contracts.record_signing`)."""
        expiries = self._expiries
        assert expiries is not None
        for index, event in enumerate(events):
            if type(event) is SessionExpired:
                reason = expiries.refusal(run[index])
                if reason is not None:
                    events[index] = _dead_letter(run[index], reason)

    async def move_past(
        self, positions: Mapping[TopicPartitionKey, int]
    ) -> dict[TopicPartitionKey, int]:
        """Store positions the consumer has moved past offsets holding no record to apply (a
        transaction marker, or a batch compaction emptied); return what is stored now (a stored
        position never moves backwards). The caller vouches that every record before them was
        applied."""

        async def work(uow: UnitOfWork) -> dict[TopicPartitionKey, int]:
            stored = await lock_positions(uow, self._consumer, {t for t, _ in positions})
            await save_positions(uow, self._consumer, positions)
            return {key: max(stored.get(key, 0), p) for key, p in positions.items()}

        return await UnitOfWork(self._store).run(work)

    async def ingest(self, batch: Mapping[Any, Sequence[Record]]) -> IngestOutcome:
        """Apply one batch exactly once; return what it did."""
        return await self.apply(self.decode(batch))

    async def apply(self, decoded: dict[TopicPartitionKey, Decoded]) -> IngestOutcome:
        """Apply decoded records in one transaction (retried whole on deadlock).

        When the batch fails because of what it holds (`caused_by_a_record`: a value the
        database cannot store, a constraint, or a Python error a record provokes), it is split
        in two and each half applied on its own, down to the one record that fails alone,
        which is dead-lettered with the reason; the rest is applied. Other errors (the database
        away, a lock) reach the caller, which waits and retries the batch from the stored
        positions.
        """
        if not decoded:
            return IngestOutcome()
        try:
            outcome = await UnitOfWork(self._store).run(lambda uow: self._apply(uow, decoded))
        except Exception as exc:
            if not caused_by_a_record(exc):
                raise
            return await self._isolate(_items(decoded), exc)
        return _warned(outcome)

    async def _isolate(self, items: list[Item], exc: BaseException) -> IngestOutcome:
        """Apply `items` (which failed together, `caused_by_a_record`) by halves, dead-lettering
        the one record that fails alone. O(log n) transactions per such record."""
        live = [i for i, item in enumerate(items) if not isinstance(item[2], DeadLetter)]
        if len(live) == 1 and items[live[0]][3] is not None:
            tp, offset, _, record, _, dated_by = items[live[0]]
            assert record is not None
            reason = refusal(exc)
            log.warning(
                "record %s:%d:%d could not be applied, dead-lettered: %s",
                escape_reason(tp[0]),
                tp[1],
                offset,
                reason,
                # a Python error is a bug a record triggers: where it was raised
                exc_info=None if caused_by_data(exc) else exc,
            )
            letter = _dead_letter(record, reason)
            message = items[live[0]][2]
            if isinstance(message, TerminateSessions):
                letter = dataclasses.replace(letter, given_up=message)
            items = list(items)
            items[live[0]] = (tp, offset, letter, record, False, dated_by)  # not counted
            batch = _regroup(items)
            return _warned(await UnitOfWork(self._store).run(lambda uow: self._apply(uow, batch)))
        if len(live) <= 1:
            raise exc  # nothing left to blame on a record
        middle = live[len(live) // 2]
        outcome = IngestOutcome()
        for half in (items[:middle], items[middle:]):
            _add(outcome, await self.apply(_regroup(half)))
        return outcome

    async def _apply(
        self, uow: UnitOfWork, decoded: dict[TopicPartitionKey, Decoded]
    ) -> IngestOutcome:
        stored = await lock_positions(uow, self._consumer, {t for t, _ in decoded})
        events: list[SessionEvent] = []
        commands: list[TerminateSessions] = []
        command_headers: dict[tuple[str, str], RecordHeaders] = {}
        command_origins: dict[tuple[str, str], tuple[int, int]] = {}
        appended: dict[int, datetime] = {}
        letters: list[DeadLetter] = []
        skipped = 0
        miskeyed: list[tuple[str, Record]] = []
        positions: dict[TopicPartitionKey, int] = {}
        dated_ahead = 0
        first_dated_ahead: str | None = None
        producer_dated: bool | None = None
        if self._letters_sent:
            self._letters_sent = {
                (topic, partition, offset)
                for topic, partition, offset in self._letters_sent
                if offset >= stored.get((topic, partition), 0)
            }
        for tp, part in decoded.items():
            start = stored.get(tp, 0)
            ahead = [offset for offset in part.dated_ahead if offset >= start]
            dated_ahead += len(ahead)
            if ahead and first_dated_ahead is None:
                created = part.messages[part.offsets.index(ahead[0])]
                assert isinstance(created, SessionCreated)  # only creations are dated ahead
                first_dated_ahead = (
                    f"tenant {escape_reason(created.tenant_id)}, session {created.session_id}, "
                    f"at {escape_reason(tp[0])}:{tp[1]}:{ahead[0]}"
                )
            if part.producer_dated is not None:
                producer_dated = part.producer_dated
            positions[tp] = max(start, part.offsets[-1] + 1)
            records = part.records or [None] * len(part.offsets)
            for offset, message, record in zip(part.offsets, part.messages, records, strict=True):
                # `type(...) is`: both are final classes, and a pydantic model's isinstance
                # goes through ABCMeta (a Python call per record)
                kind = type(message)
                if offset < start:
                    skipped += 1
                elif kind is DeadLetter:
                    letters.append(message)  # type: ignore[arg-type]
                elif kind is TerminateSessions:
                    assert isinstance(message, TerminateSessions)  # for mypy; a rare record
                    commands.append(message)
                    # the first of a duplicated command id, as `apply_commands` keeps
                    command_origins.setdefault(
                        (message.tenant_id, str(message.command_id)), (tp[1], offset)
                    )
                    if record is not None:
                        name = str(message.command_id)
                        if record.headers:  # the trace context, if any
                            command_headers[(message.tenant_id, name)] = record.headers
                        keyed = record_key(message.tenant_id, name)
                        if record.key != keyed and not _keyed_as_v1(record, message):
                            miskeyed.append(("command", record))
                else:
                    event: SessionEvent = message  # type: ignore[assignment]
                    events.append(event)
                    if kind is SessionCreated and record is not None:
                        at = append_time(record)
                        if at is not None:
                            appended[len(events) - 1] = at
                    if (
                        record is not None
                        and record.key != record_key(event.tenant_id, event.session_id)
                        and not _keyed_as_v1(record, event)
                    ):
                        miskeyed.append(("event", record))
        now = self._clock()
        outcome = await self._projector.apply(
            uow, events, commands, now, command_headers, command_origins, appended
        )
        given_up = [letter.given_up for letter in letters if letter.given_up is not None]
        for command in given_up:
            await record_given_up(uow, command, now, 0)
        unsent = [
            letter
            for letter in letters
            if (letter.topic, letter.partition, letter.offset) not in self._letters_sent
        ]
        if unsent:
            # durable on the DLQ before the position moves past them; sent once the rest of
            # the batch has been applied, so a batch the database refuses (applied again by
            # halves, `_isolate`) has sent none of them
            await self._dead_letters.send(unsent)
            self._letters_sent.update((u.topic, u.partition, u.offset) for u in unsent)
        await save_positions(uow, self._consumer, positions)
        return IngestOutcome(
            **vars(outcome),
            dead_letters=len(letters),
            skipped=skipped,
            positions=positions,
            event_types=dict(collections.Counter(map(_type_of, events))),
            dead_letter_reasons=[letter.reason for letter in letters],
            miskeyed=dict(collections.Counter(kind for kind, _ in miskeyed)),
            first_miskeyed=_where(miskeyed[0][1]) if miskeyed else None,
            dated_ahead=dated_ahead,
            first_dated_ahead=first_dated_ahead,
            producer_dated=producer_dated,
            # a command dead-lettered as it was read (a newer schema_version, a field that
            # breaks the contract) failed as much as one given up in its application: before,
            # only the latter counted, and RegistryCommandsFailed stayed silent while the
            # admin's 202 waited for ever (a review of the operators' view, stop 72)
            commands_failed=sum(letter.topic == self._commands_topic for letter in letters),
        )


def created_by_append_time(
    run: Sequence[Record], messages: list[SessionEvent | DeadLetter]
) -> list[int]:
    """Take every `session.created` of `messages` (decoded from `run`, one each, replaced in
    place) dated after its record's append time as created at that time; the offsets of those
    dated more than `NOTICED_AHEAD` after it.

    A producer dates its events, and a termination by filter ends the sessions created no later
    than the admin's confirmed count: a creation dated ahead would stay out of it until that
    date. The broker's append time (a topic with `message.timestamp.type=LogAppendTime`, as the
    contract creates `sessions.events`) is a moment no producer chooses, and a replay reads it
    back unchanged, so a rebuild makes the same read model. A record stamped by its producer
    (CreateTime) is taken as dated.
    """
    dated_ahead = []
    noticed = NOTICED_AHEAD
    for index, message in enumerate(messages):
        if type(message) is SessionCreated:
            record = run[index]
            appended = append_time(record)
            if appended is not None and message.occurred_at > appended:
                messages[index] = message.model_copy(update={"occurred_at": appended})
                if message.occurred_at - appended > noticed:
                    dated_ahead.append(record.offset)
    return dated_ahead


def append_time(record: Record) -> datetime | None:
    """When the broker appended `record` (a topic with `message.timestamp.type=LogAppendTime`):
    a moment no producer chooses, read back unchanged by a replay. None when its producer
    dated it (CreateTime), or for a time no datetime holds (never the broker's)."""
    if record.timestamp_type != LOG_APPEND_TIME:
        return None
    try:
        return datetime.fromtimestamp(record.timestamp / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return None


def _where(record: Record) -> str:
    return f"{escape_reason(record.topic)}:{record.partition}:{record.offset}"


def _warned(outcome: IngestOutcome) -> IngestOutcome:
    """`outcome`, once its transaction committed; a line in the log if it applied records
    keyed against the contract (where the first is, never a key: it may be a credential), and
    one if it applied creations dated ahead (the first's session and place)."""
    if outcome.miskeyed:
        log.warning(
            "%d record(s) of this batch are not keyed as the contract keys them (the first at "
            "%s); applied by their value: a producer keys by something else",
            sum(outcome.miskeyed.values()),
            outcome.first_miskeyed,
        )
    if outcome.dated_ahead:
        log.warning(
            "%d session.created record(s) of this batch dated after the broker appended them, "
            "taken as created then; first: %s (the producer's clock runs ahead, or it dates "
            "sign-ins ahead: docs/operations.md#registrycreationsdatedahead)",
            outcome.dated_ahead,
            outcome.first_dated_ahead,
        )
    return outcome


def _keyed_as_v1(record: Record, message: SessionEvent | TerminateSessions) -> bool:
    """Whether a record not keyed as contract v2 and later key it (`<tenant_id>/<handle>` for
    an event, `<tenant_id>/<command_id>` for a command) was written as v1 under v1's key: its
    value's `schema_version` 1 (upcast on reading), its key the session id (the credential
    whose handle the upcaster derived) or the command id. The key only routes a record to its
    partition (the registry reads the tenant and the session from the value, and every merge
    of the fold is commutative), so a record keyed otherwise is applied all the same; this
    says whether to count it. A v2 record keyed by the credential, as v1 keyed it, is counted:
    its producer puts credentials on the topic.
    """
    key = record.key
    if key is None:
        return False
    if isinstance(message, TerminateSessions):
        v1_key = key == str(message.command_id).encode()
    else:
        v1_key = is_v1_key_of(key, message.tenant_id, message.session_id)
    return v1_key and _written_as_v1(record.value)


def _written_as_v1(raw: bytes | None) -> bool:
    try:
        return json.loads(raw or b"").get("schema_version") == 1  # type: ignore[no-any-return]
    except (ValueError, AttributeError):
        return False


_type_of: Callable[[SessionEvent], str] = attrgetter("type")
