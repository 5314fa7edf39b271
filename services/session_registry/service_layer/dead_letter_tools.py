"""The dead-letter topic for SREs: list and show what is there, and redrive it once fixed.

A dead letter is the refused record (key, value, headers) plus the `dlq.*` headers
(`adapters.dead_letters`). Listing reads the topic up to its end offsets now and filters by
reason, event type, tenant and time (the dead letter's own timestamp: when it was refused).

Redriving puts a record back where the registry reads it: decoded again by the codec (so a
record of an older schema version is upcast by `UPCASTERS`, and one of a newer version is
read once this code knows it), re-encoded at the current version with its contract key
(`<tenant_id>/<handle>` for an event, `<tenant_id>/<command_id>` for a command, so it lands
on the session's partition even when its original key was a v1 one), and published to its
source topic with the original headers and `dlq.redriven.from`. A record the codec still
refuses stays where it is. Applying is idempotent downstream (the fold merges an event twice
to the same row, the history and applied commands are keyed by event and command id); on top
of that a record the read model shows applied (a lifecycle event in the history, a command
in `applied_commands`) is not sent again.
"""

from __future__ import annotations

import contextlib
import json
import re
import uuid
from collections import Counter
from collections.abc import AsyncGenerator, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from read_model.database import make_engine, schema_of
from session_contracts.codec import MAX_RECORD_BYTES, DecodeError, decode_command, decode_event
from session_contracts.codec import encode as encode_message
from session_contracts.escaping import escape_reason
from session_contracts.handles import TENANT_ID, is_handle, record_key, split_record_key
from session_contracts.kafka_clients import (
    new_consumer,
    new_producer,
    start_consumer,
    start_producer,
    stop_consumer,
)
from session_contracts.models import (
    SCHEMA_VERSION,
    SessionCreated,
    SessionEvent,
    SessionExpired,
    SessionTerminated,
    TerminateSessions,
)
from session_contracts.record_signing import carries_signature, signature_of
from session_contracts.redaction import redact_url
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters import dead_letters as dlq
from session_registry.adapters.command_store import already_applied
from session_registry.adapters.partitions import (
    offsets_from,
    partition_for_key,
    records_up_to_ends,
    topic_partitions,
)
from session_registry.adapters.session_store import recorded_events
from session_registry.domain.history import RECORDED_TYPES
from session_registry.service_layer.reporting import Report
from session_registry.service_layer.session_log import record_time

REDRIVEN_FROM = "dlq.redriven.from"
"""Header of a redriven record: `<dlq topic>:<partition>:<offset>` of the dead letter."""
RESENT_FOR = "dlq.resent.for"
"""Header of a session's end sent again with its redriven creation (`_ends_of`), right before
it and again right after: the creation's dead letter, `<dlq topic>:<partition>:<offset>`."""
ENDS_BEFORE = timedelta(minutes=5)
"""How long before a redriven creation's `occurred_at`, or the moment the broker appended it,
whichever is first, its session's ends are looked for on the log (producers' clocks differ by
seconds; a termination by id can be applied, and its end appended, before the creation)."""
MAX_ENDS_RESENT = 8
"""Of each type (`session.terminated`, `session.expired`), the ends of one redriven
creation's session sent again, at most: a producer appending ends without number keeps the
redrive's memory and requests bounded."""
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_CUT_HEADERS = {
    dlq.VALUE_SIZE: "value_size",
    dlq.KEY_SIZE: "key_size",
    dlq.HEADERS_DROPPED: "headers_dropped",
}
"""What a dead letter too large to copy whole says was cut (`adapters.dead_letters`)."""
_DLQ_HEADERS = {
    dlq.REASON,
    dlq.SOURCE_TOPIC,
    dlq.SOURCE_PARTITION,
    dlq.SOURCE_OFFSET,
    dlq.CONSUMER,
    dlq.VALUE_NULL,
    *_CUT_HEADERS,
}
HEADER_SHOWN_CHARS = 4096
"""A header of the refused record as `dlq show` prints it, at most (the middle cut, said)."""
REDRIVE_CHUNK = 1000
"""Dead letters planned, checked against the read model and sent at a time (`redrive`): the
memory of one chunk whatever the topic holds, and bind parameters well under asyncpg's
32,767 (two a letter)."""


@dataclass(frozen=True)
class Letter:
    """One dead letter, with what its headers and (leniently read) body say."""

    partition: int
    offset: int
    timestamp: datetime
    key: bytes | None
    value: bytes | None
    headers: tuple[dlq.Header, ...]
    reason: str
    source: str | None
    source_partition: int | None
    source_offset: int | None
    consumer: str | None
    type: str | None
    tenant_id: str | None
    schema_version: int | None

    def summary(self) -> dict[str, Any]:
        """What `dlq list` prints: where, when, why, and what it seems to be."""
        return {
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat(timespec="milliseconds"),
            "reason": self.reason,
            "type": self.type,
            "tenant_id": self.tenant_id,
            "schema_version": self.schema_version,
            "source": None
            if self.source is None
            else {"topic": self.source, "partition": self.source_partition},
            "source_offset": self.source_offset,
            "consumer": self.consumer,
        }

    def detail(self, topics: Topics, *, raw: bool) -> dict[str, Any]:
        """What `dlq show` prints: the summary, the other headers, and the record decoded
        (upcast) when the codec reads it now; its raw text only when asked (`raw`): a v1
        record's session id is a credential."""
        out = self.summary()
        cut = {  # from the registry's own headers: those after its last `dlq.reason`
            _CUT_HEADERS[name]: _number(_text(value))
            for name, value in self.headers[_registrys(self.headers) :]
            if name in _CUT_HEADERS and value is not None
        }
        if cut:  # the record was too large to copy whole: the source topic has the rest
            out["cut"] = cut
        out["headers"] = _shown_headers(  # the record's own: escaped, inert under `jq -r` too
            (name, value) for name, value in self.headers if name not in _DLQ_HEADERS
        )
        try:
            message = _decode(self, topics)
            out["decoded_now"] = json.loads(message.model_dump_json(exclude_none=True))
        except DecodeError as error:
            out["refused_now"] = error.reason
        if raw:
            out["key"] = None if self.key is None else escape_reason(_text(self.key))
            out["value"] = None if self.value is None else escape_reason(_text(self.value))
        return out


def _shown_headers(headers: Iterable[dlq.Header]) -> dict[str, Any]:
    """Headers by name, each escaped and bounded; a name that comes more than once (or names
    escaped alike) with the list of its values, in order. A dict of one value a name showed
    two signature headers, the registry's reason to refuse a record, as one (a review, stop
    68)."""
    shown: dict[str, list[str | None]] = {}
    for name, value in headers:
        text = None if value is None else value.decode("utf-8", "replace")
        shown.setdefault(escape_reason(name, HEADER_SHOWN_CHARS), []).append(
            None if text is None else escape_reason(text, HEADER_SHOWN_CHARS)
        )
    return {name: values[0] if len(values) == 1 else values for name, values in shown.items()}


@dataclass(frozen=True)
class LetterFilter:
    """Which dead letters: every given condition must hold."""

    reason: str | None = None
    """A substring of `dlq.reason`, case-insensitive."""
    type: str | None = None
    tenant_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    def matches(self, letter: Letter) -> bool:
        """Whether the dead letter passes every condition."""
        if self.reason is not None and self.reason.lower() not in letter.reason.lower():
            return False
        if self.type is not None and letter.type != self.type:
            return False
        if self.tenant_id is not None and letter.tenant_id != self.tenant_id:
            return False
        if self.since is not None and letter.timestamp < self.since:
            return False
        return self.until is None or letter.timestamp <= self.until


def _registrys(headers: tuple[dlq.Header, ...]) -> int:
    """Where the registry's `dlq.*` headers begin: they follow the record's own, which a
    producer may have forged."""
    reasons = [n for n, (name, _) in enumerate(headers) if name == dlq.REASON]
    return reasons[-1] if reasons else len(headers)


def _text(raw: bytes) -> str:
    return bytes(raw).decode("utf-8", "replace")


def _header(headers: dict[str, bytes | None], name: str) -> str | None:
    value = headers.get(name)
    return None if value is None else _text(value)


def _number(text: str | None) -> int | None:
    # ASCII digits only, and few: `str.isdigit` takes '²', which `int` refuses (a forged
    # header stopped every `dlq` command), and `int` refuses over 4,300 digits
    if text is None or not (text.isascii() and text.isdecimal() and len(text) <= 19):
        return None
    return int(text)


def _escaped(text: str | None) -> str | None:
    return None if text is None else escape_reason(text)


def _peek(value: bytes | None) -> dict[str, Any]:
    """The record's top-level fields when it is a JSON object of sane size, else nothing."""
    if value is None or len(value) > MAX_RECORD_BYTES:
        return {}
    try:
        payload = json.loads(bytes(value))
    except (ValueError, RecursionError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _tenant_of_key(key: bytes | None) -> str | None:
    """The tenant a contract key names: `<tenant>/<handle>` (an event's), `<tenant>/<command
    id>` (a command's); None for any other. A v1 key is the session's credential, and what it
    holds before a `/` is a piece of it, never a tenant to show (found by a review)."""
    parts = split_record_key(key)
    if parts is None or not TENANT_ID.fullmatch(parts[0]):
        return None
    tenant, rest = parts
    if is_handle(rest):
        return tenant
    try:
        return tenant if str(uuid.UUID(rest)) == rest else None
    except ValueError:
        return None


def read_letter(record: Any) -> Letter:
    """A dead letter from a consumed record of the DLQ topic."""
    headers = dlq.copied_headers(record.headers)
    # the last of each name: the registry's `dlq.*` headers follow the record's own, which a
    # producer may have forged (a source topic it cannot write, to be redriven there)
    named = dict(headers)
    # a record with neither key nor value is dead-lettered with an empty one, and says so
    null = any(name == dlq.VALUE_NULL for name, _ in headers[_registrys(headers) :])
    value = None if null else record.value
    payload = _peek(value)
    kind, tenant, version = (
        payload.get("type"),
        payload.get("tenant_id"),
        payload.get("schema_version"),
    )
    if not isinstance(tenant, str):
        tenant = _tenant_of_key(record.key)
    return Letter(
        partition=record.partition,
        offset=record.offset,
        timestamp=record_time(record.timestamp),
        key=record.key,
        value=value,
        headers=headers,
        # escaped as the registry escapes its own (a topic name is left as it is): a forged
        # one with ESC or U+202E stays inert under `jq -r` too
        reason=escape_reason(_header(named, dlq.REASON) or ""),
        source=_escaped(_header(named, dlq.SOURCE_TOPIC)),
        source_partition=_number(_header(named, dlq.SOURCE_PARTITION)),
        source_offset=_number(_header(named, dlq.SOURCE_OFFSET)),
        consumer=_escaped(_header(named, dlq.CONSUMER)),
        type=escape_reason(kind) if isinstance(kind, str) else None,
        tenant_id=escape_reason(tenant) if isinstance(tenant, str) else None,
        schema_version=version
        if isinstance(version, int) and not isinstance(version, bool)
        else None,
    )


def _decode(letter: Letter, topics: Topics) -> SessionEvent | TerminateSessions:
    if letter.source == topics.commands:
        return decode_command(letter.value)
    if letter.source == topics.events:
        return decode_event(letter.value)
    raise DecodeError(f"its source topic {letter.source!r} is not one the registry reads")


async def dead_letters(
    connection: KafkaSettings,
    topics: Topics,
    chosen: LetterFilter,
    *,
    offset: int | None = None,
    report: Report | None = None,
) -> AsyncGenerator[Letter]:
    """The dead letters passing `chosen`, up to the end offsets now; from `offset` on when
    given (the DLQ topic has one partition)."""
    kafka = new_consumer(
        connection,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await start_consumer(kafka)
    try:
        partitions = await topic_partitions(kafka, topics.dead_letters)
        kafka.assign(partitions)
        starts: dict[TopicPartition, int] = await kafka.beginning_offsets(partitions)
        if offset is not None:
            starts = {tp: max(start, offset) for tp, start in starts.items()}
        async for _, record in records_up_to_ends(kafka, starts, report):
            letter = read_letter(record)
            if chosen.matches(letter):
                yield letter
    finally:
        await stop_consumer(kafka)


@dataclass
class Redrive:
    """What redriving one dead letter does (or would do)."""

    letter: Letter
    action: str
    """`redrive`, `skip` (applied already) or `refused` (the codec still refuses it)."""
    why: str
    topic: str | None = None
    partition: int | None = None
    key: bytes | None = None
    value: bytes | None = None
    identity: tuple[str, str] | None = None
    """(tenant_id, event or command id)."""
    detail: dict[str, Any] = field(default_factory=dict)
    since: datetime | None = None
    """A creation's `occurred_at`: its session's ends are looked for from a little before."""
    ends: list[tuple[bytes, bytes, tuple[tuple[str, bytes], ...], str, str]] = field(
        default_factory=list
    )
    """A redriven creation's session's ends on the log (key, value, the signature header of an
    expiry, type, event id), sent again right before it and right after (`_ends_of`)."""

    def as_json(self) -> dict[str, Any]:
        """One line of `dlq redrive`'s output."""
        return {
            "offset": self.letter.offset,
            "action": self.action,
            "why": self.why,
            "reason": self.letter.reason,
            "to": None
            if self.topic is None
            else {"topic": self.topic, "partition": self.partition},
            **self.detail,
        }


def plan(letter: Letter, topics: Topics, *, copies: bool = False) -> Redrive:
    """Decode (upcasting) and address one dead letter, or say why it cannot be redriven. A
    copy a registry dead-lettered again after a redrive (it carries `dlq.redriven.from`) is
    skipped unless `copies`: its letter is redriven itself, and every run sent both, which the
    registry, still refusing them, dead-lettered again: the topic doubled each run (a review,
    stop 70)."""
    if not copies and (first := _last_header(letter.headers, REDRIVEN_FROM)) is not None:
        return Redrive(
            letter,
            "skip",
            f"a copy dead-lettered again after the redrive of {escape_reason(first)}, which is "
            "redriven itself (--include-copies to send it too)",
        )
    try:
        message = _decode(letter, topics)
    except DecodeError as error:
        return Redrive(letter, "refused", f"still refused: {error.reason}")
    upcast = letter.schema_version is not None and letter.schema_version < SCHEMA_VERSION
    detail: dict[str, Any]
    if isinstance(message, TerminateSessions):
        name, identity = str(message.command_id), str(message.command_id)
        detail = {"type": message.type, "tenant_id": message.tenant_id, "command_id": name}
    else:
        name, identity = message.session_id, str(message.event_id)
        detail = {
            "type": message.type,
            "tenant_id": message.tenant_id,
            "session_id": name,
            "event_id": identity,
        }
    tenant = detail["tenant_id"]
    if upcast:
        detail["upcast_from"] = letter.schema_version
    return Redrive(
        letter,
        "redrive",
        f"decodes now{' (upcast from v' + str(letter.schema_version) + ')' if upcast else ''}",
        since=message.occurred_at if isinstance(message, SessionCreated) else None,
        topic=letter.source,
        key=record_key(tenant, name),
        value=encode_message(message),
        identity=(tenant, identity),
        detail=detail,
    )


async def _skip_applied(plans: list[Redrive], conn: AsyncConnection, topics: Topics) -> None:
    """Mark `skip` what the read model shows applied already."""
    events = {
        p.identity
        for p in plans
        if p.identity and p.topic == topics.events and p.detail.get("type") in RECORDED_TYPES
    }
    commands = {p.identity for p in plans if p.identity and p.topic == topics.commands}
    seen = await recorded_events(conn, events) | await already_applied(conn, commands)
    for p in plans:
        if p.action == "redrive" and p.identity in seen:
            what = "command" if p.topic == topics.commands else "event"
            p.action, p.why = "skip", f"applied already (the read model holds this {what} id)"


def _skip_repeats(plans: list[Redrive]) -> None:
    """Mark `skip` a record planned already in this chunk: the same bytes to the same topic
    under the same key (one copy is enough, the registry applies it once). Not the same id
    alone: a hostile letter earlier in the chunk carrying another record's event id would
    have had that record skipped (a review, stop 70)."""
    first: dict[tuple[str | None, bytes | None, bytes | None], int] = {}
    for p in plans:
        if p.action != "redrive":
            continue
        same = (p.topic, p.key, p.value)
        if (offset := first.setdefault(same, p.letter.offset)) != p.letter.offset:
            p.action, p.why = "skip", f"the same record as the letter at offset {offset}"


def _last_header(headers: Iterable[dlq.Header], name: str) -> str | None:
    """The text of the last header named `name`, if any."""
    found = None
    for key, value in headers:
        if key == name and value is not None:
            found = value.decode("utf-8", "replace")
    return found


async def redrive(
    connection: KafkaSettings,
    topics: Topics,
    database_url: str,
    chosen: LetterFilter,
    each: Callable[[Redrive], None],
    *,
    dry_run: bool,
    report: Report | None = None,
    copies: bool = False,
) -> Counter[str]:
    """Redrive the dead letters passing `chosen` (or, with `dry_run`, say what it would do),
    `REDRIVE_CHUNK` at a time: each is handed to `each` once sent (or planned), then
    dropped, so a topic of millions of dead letters takes the memory of one chunk. The
    actions counted."""
    if await schema_of(database_url) is None:
        # without it every record would look new: refuse rather than redrive blind
        raise LookupError(
            f"no read model at {redact_url(database_url)}: point SESSIONS_DATABASE_URL at the "
            "registry's database (redrive skips what it shows applied)"
        )
    counts: Counter[str] = Counter()
    engine = make_engine(database_url)
    producer = new_producer(connection)
    try:
        # fails, not hangs, on a broker still starting; a start that failed stops the
        # producer, and the engine is disposed below (both were left open: a review, stop 73)
        await start_producer(producer, connection.kafka_request_timeout_ms / 1000)
        chunk: list[Redrive] = []
        async for letter in dead_letters(connection, topics, chosen, report=report):
            chunk.append(plan(letter, topics, copies=copies))
            if len(chunk) == REDRIVE_CHUNK:
                await _redrive_chunk(chunk, engine, producer, connection, topics, dry_run=dry_run)
                counts.update(_handed(chunk, each))
                chunk = []
        await _redrive_chunk(chunk, engine, producer, connection, topics, dry_run=dry_run)
        counts.update(_handed(chunk, each))
    finally:
        await producer.stop()
        await engine.dispose()
    return counts


def _handed(plans: list[Redrive], each: Callable[[Redrive], None]) -> list[str]:
    for p in plans:
        each(p)
    return [p.action for p in plans]


async def _redrive_chunk(
    plans: list[Redrive],
    engine: AsyncEngine,
    producer: AIOKafkaProducer,
    connection: KafkaSettings,
    topics: Topics,
    *,
    dry_run: bool,
) -> None:
    """Skip what is applied, address the rest, look up the ends of each redriven creation's
    session (`_ends_of`), and (unless `dry_run`) send them and wait: the ends, the letters,
    the ends again.

    Ends first: a creation on the log without its ends, were the run to stop between them (a
    broker error, Ctrl-C), would be skipped by the next run as applied, its ends never sent,
    its session open for good (a review, stop 68; the creations went first before). Ends
    without their creation are what the registry keeps as a session never created
    (`SESSIONS_ACTIVITY_ONLY_SECONDS`); the creation, sent next or by the next run, folds into
    it, ended and revoked. And again after: were that row deleted before the creation is read
    (a registry stopped longer than that between the two), the second copies end it (a second
    copy of an end folded already changes nothing)."""
    if not plans:
        return
    async with engine.connect() as conn:  # one per chunk: no transaction held over the scan
        await _skip_applied(plans, conn, topics)
    _skip_repeats(plans)
    sending = [p for p in plans if p.action == "redrive" and p.topic is not None]
    ids = {
        topic: list(await producer.partitions_for(topic)) for topic in {p.topic for p in sending}
    }
    for p in sending:
        if p.key is not None:
            p.partition = partition_for_key(p.key, ids[p.topic])
    creations = [p for p in sending if p.since is not None and p.topic == topics.events]
    if creations:
        await _ends_of(connection, topics.events, creations, ids[topics.events])
        for p in creations:
            if p.ends:
                p.detail["ends_sent"] = [event_id for *_, event_id in p.ends]
    if dry_run:
        return
    await _send_ends(producer, creations, topics)
    futures = []
    for p in sending:
        headers = [(n, v) for n, v in p.letter.headers if n not in _DLQ_HEADERS]
        headers.append(
            (
                REDRIVEN_FROM,
                f"{topics.dead_letters}:{p.letter.partition}:{p.letter.offset}".encode(),
            )
        )
        futures.append(
            await producer.send(p.topic, p.value, key=p.key, headers=headers, partition=p.partition)
        )
    for future in futures:
        await future
    await _send_ends(producer, creations, topics)


async def _send_ends(producer: AIOKafkaProducer, creations: list[Redrive], topics: Topics) -> None:
    """Send the ends of each of `creations` found on the log, and wait."""
    futures = []
    for p in creations:
        where = f"{topics.dead_letters}:{p.letter.partition}:{p.letter.offset}".encode()
        for key, value, signature, *_ in p.ends:
            headers = [*signature, (RESENT_FOR, where)]
            futures.append(
                await producer.send(p.topic, value, key=key, headers=headers, partition=p.partition)
            )
    for future in futures:
        await future


async def _ends_of(
    connection: KafkaSettings, topic: str, creations: list[Redrive], partitions: Iterable[int]
) -> None:
    """Fill each redriven creation's `ends`: the `session.terminated` and `session.expired` of
    its session on `topic`, read from `ENDS_BEFORE` before the earlier of its `occurred_at`
    and the moment the broker appended it (when it was read there), and from its own offset
    at the latest, on the partition it is sent to and on the one it was read from.

    A session ended while its creation sat on the DLQ (a logout, an admin's termination by
    id) is a row never created, which the registry deletes with its history
    `SESSIONS_ACTIVITY_ONLY_SECONDS` (an hour) after storing it. A creation redriven later
    made an open session, never revoked (found by a review, 2026-12-06); its ends, sent again
    with it, fold it ended, and the registry revokes it. Within the hour they are in the
    history already and change nothing.

    Looking from `occurred_at` alone missed the ends of a creation dated ahead by its
    producer's clock (a review, 2026-12-06: from its offset since), and from its offset, an
    end appended before it: a termination by id applied before the creation was read, the
    race the registry keeps such ends for (a review, stop 68: from its append time since).
    Looking on the partition it is sent to alone, under its contract key alone, missed the
    ends written before partitions were added to the topic (on the partition the creation
    was read from) and those a producer keyed otherwise: the creation came back open (a
    review, stop 70). An end is now any record whose key is the creation's, as sent or as it
    was read, or whose value names its session handle (`_ENDS_MATCH`)."""
    known = set(partitions)
    wanted: dict[int, _Wanted] = {}
    for p in creations:
        if p.partition is None or p.key is None:
            continue
        read_from = {p.partition}
        if p.letter.source == topic and p.letter.source_partition in known:
            read_from.add(p.letter.source_partition)
        for partition in read_from:
            wanted.setdefault(partition, _Wanted()).add(p)
    kafka = new_consumer(connection, enable_auto_commit=False, auto_offset_reset="earliest")
    await start_consumer(kafka)
    try:
        chosen = [TopicPartition(topic, n) for n in sorted(wanted)]
        kafka.assign(chosen)
        # when the creations read from each partition were appended (the earliest of them:
        # the others were appended after it), read once
        read_offsets: dict[int, list[int]] = {}
        for p in creations:
            source, offset = p.letter.source_partition, p.letter.source_offset
            if p.letter.source == topic and source in known and offset is not None:
                assert source is not None  # in `known`
                read_offsets.setdefault(source, []).append(offset)
        appended_on: dict[int, tuple[int, datetime] | None] = {
            n: await _appended_at(kafka, TopicPartition(topic, n), min(offsets))
            for n, offsets in read_offsets.items()
        }
        starts: dict[TopicPartition, int] = {}
        for tp in chosen:
            mine = wanted[tp.partition].creations
            since = min(_looked_for_from(p, appended_on) for p in mine)
            dated = (await offsets_from(kafka, [tp], _looked_from(since)))[tp]
            starts[tp] = max(0, min([dated, *read_offsets.get(tp.partition, ())]))
        async for tp, record in records_up_to_ends(kafka, starts):
            if record.value is not None and (redriven := wanted[tp.partition].of(record)):
                _take_end(record, redriven)
    finally:
        await stop_consumer(kafka)


_ENDS_MATCH = re.compile(rb'"session_id"\s*:\s*"([A-Za-z0-9_-]{43})"')
"""A v2 value's session handle, found without decoding it: most records on a partition are
another session's, and a decode is about 20 times the search."""


@dataclass
class _Wanted:
    """The redriven creations whose ends are looked for on one partition, by record key and
    by session handle."""

    creations: list[Redrive] = field(default_factory=list)
    by_key: dict[bytes, list[Redrive]] = field(default_factory=dict)
    by_handle: dict[bytes, list[Redrive]] = field(default_factory=dict)

    def add(self, p: Redrive) -> None:
        self.creations.append(p)
        for key in {p.key, p.letter.key} - {None}:
            assert key is not None
            self.by_key.setdefault(key, []).append(p)
        self.by_handle.setdefault(p.detail["session_id"].encode(), []).append(p)

    def of(self, record: Any) -> list[Redrive]:
        """The creations `record` may be an end of (`_take_end` decides)."""
        found = self.by_key.get(record.key or b"", [])
        match = _ENDS_MATCH.search(record.value)
        return [*found, *self.by_handle.get(match.group(1), [])] if match else found


async def _appended_at(
    kafka: AIOKafkaConsumer, tp: TopicPartition, offset: int
) -> tuple[int, datetime] | None:
    """The first record `tp` holds from `offset` on (the one at `offset` unless retention
    deleted it): its offset and the moment the broker appended it (on `sessions.events`,
    LogAppendTime). No later than the append of any record from there on, so a bound for
    every creation still held; for one deleted before it, a time it was appended before
    (`_looked_for_from`). None when the partition holds nothing from there."""
    async with contextlib.aclosing(records_up_to_ends(kafka, {tp: offset})) as records:
        async for _, record in records:
            return record.offset, record_time(record.timestamp)
    return None


def _looked_for_from(
    p: Redrive, appended_on: Mapping[int, tuple[int, datetime] | None]
) -> datetime:
    """From when a creation's ends are looked for (`ENDS_BEFORE` before it, `_looked_from`),
    on every partition: when the broker appended it, if the partition it was read from still
    holds it (the append time of the first record held from the earliest creation read
    there: no later), else the earlier of its `occurred_at` and that time (it was appended
    before the first record held). Its producer's clock dates it, ahead or back: dated ahead,
    its ends on the partition it is sent to were looked for from too late and missed; dated
    back (to 1970, which the contract accepts), every chunk read that partition from its
    first offset (a review, stop 70). The broker's clock bounds both. (Dated by the first
    record held, a creation deleted before it was looked for from days after its logout: a
    review of that fix.)"""
    assert p.since is not None  # a creation's
    held = None
    if p.letter.source_partition is not None:
        held = appended_on.get(p.letter.source_partition)
    if held is None:
        return p.since
    first_offset, appended = held
    offset = p.letter.source_offset
    if offset is not None and offset >= first_offset:
        return appended
    return min(p.since, appended)


def _looked_from(since: datetime) -> datetime:
    """`ENDS_BEFORE` before `since`, no earlier than the epoch (Kafka's times start there; a
    creation dated in year 1 is a valid record)."""
    try:
        return max(since - ENDS_BEFORE, EPOCH)
    except OverflowError:
        return EPOCH


def _take_end(record: Any, redriven: list[Redrive]) -> None:
    """Keep `record` as an end of the redriven creations' session it names, if it is one: up
    to `MAX_ENDS_RESENT` of each type, each (type, event id) once (a run before left copies on
    the log). None of a producer's headers goes with it, which could make it too large to send
    again (a header of megabytes, compressed on the log) or could not be copied (a header
    without a value: `bytes(None)` stopped every redrive; a review, stop 68); an expiry keeps
    its signature, if it has one header of the registry's form, the proof the registry reads
    (with two, or another form, it would refuse it: it is left out)."""
    try:
        event = decode_event(record.value)
    except DecodeError:
        return
    if not isinstance(event, SessionTerminated | SessionExpired):
        return
    signature: tuple[tuple[str, bytes], ...] = ()
    if isinstance(event, SessionExpired) and carries_signature(record.headers or ()):
        if (found := signature_of(record.headers)) is None:
            return
        signature = (found,)
    for p in redriven:
        if (event.tenant_id, event.session_id) != (p.detail["tenant_id"], p.detail["session_id"]):
            continue
        kept = [(kind, event_id) for *_, kind, event_id in p.ends]
        if (event.type, str(event.event_id)) in kept:
            continue
        if sum(kind == event.type for kind, _ in kept) >= MAX_ENDS_RESENT:
            continue
        p.ends.append((record.key, record.value, signature, event.type, str(event.event_id)))
