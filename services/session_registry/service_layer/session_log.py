"""One session's records, read from the log itself: the one partition its key maps to.

Events (and revocations) of a session are keyed `<tenant_id>/<handle>` (contract v2), so the
producers' partitioner puts all of them on one partition of each topic. This reads that
partition only, from the beginning (or from `since`), and keeps the records whose key is the
session's; `follow` keeps reading as new ones arrive.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from aiokafka import TopicPartition

from session_contracts.codec import DecodeError, decode_event, decode_revocation
from session_contracts.escaping import escape_reason
from session_contracts.handles import is_handle, record_key
from session_contracts.kafka_clients import new_consumer, start_consumer, stop_consumer
from session_contracts.record_signing import SignedExpiries, carries_signature
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.partitions import (
    offsets_from,
    partition_for_key,
    records_up_to_ends,
    topic_partitions,
)
from session_registry.service_layer.reporting import Report


@dataclass(frozen=True)
class LogRecord:
    """One record of the session, as printed: where it is, when, and what it says."""

    topic: str
    partition: int
    offset: int
    timestamp: datetime
    key: str
    body: dict[str, Any]

    def as_json(self) -> dict[str, Any]:
        """The JSON line: position, timestamp (UTC, ms), key, then the decoded record."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "offset": self.offset,
            "timestamp": self.timestamp.isoformat(timespec="milliseconds"),
            "key": self.key,
            **self.body,
        }


def record_time(millis: int) -> datetime:
    """A Kafka record timestamp as an aware UTC datetime; one past what a datetime holds
    (a producer stamps `CreateTime` records as it likes: year 10000, or before year 1) is
    the nearest it holds, so one record never stops a command reading a topic."""
    try:
        return datetime.fromtimestamp(millis / 1000, UTC)
    except (ValueError, OverflowError, OSError):
        return (datetime.max if millis > 0 else datetime.min).replace(tzinfo=UTC)


def describe_value(topic: str, topics: Topics, value: bytes | None) -> dict[str, Any]:
    """`{"record": {...}}` (decoded, upcast to the current version), `{"tombstone": true}`, or
    `{"error": reason, "value": text}` for a record the decoder refuses (escaped)."""
    if value is None and topic == topics.revocations:
        return {"tombstone": True}
    try:
        decoded = decode_revocation(value) if topic == topics.revocations else decode_event(value)
    except DecodeError as error:
        text = "" if value is None else bytes(value).decode("utf-8", "replace")
        return {"error": error.reason, "value": escape_reason(text)}
    return {"record": json.loads(decoded.model_dump_json(exclude_none=True))}


def _with_signature(
    body: dict[str, Any], record: Any, expiries: SignedExpiries | None
) -> dict[str, Any]:
    """`body`, with a `session.expired`'s `registry_signature` (what the registry's ingest
    decides by: `session_contracts.record_signing`)."""
    if body.get("record", {}).get("type") != "session.expired":
        return body
    verdict: str
    if expiries is not None:
        verdict = expiries.signer.verdict(record.key, record.value, record.headers)
    else:
        verdict = "not checked" if carries_signature(record.headers) else "none"
    return {**body, "registry_signature": verdict}


def check_session(tenant_id: str, handle: str) -> bytes:
    """The session's record key, or ValueError naming what is wrong with the arguments."""
    if not tenant_id or "/" in tenant_id:
        raise ValueError(f"tenant {tenant_id!r} is not a tenant id")
    if not is_handle(handle):
        raise ValueError(
            f"session {handle!r} is not a session handle (43 base64url characters, as in the "
            "admin list); a credential is never accepted here"
        )
    return record_key(tenant_id, handle)


async def session_records(
    connection: KafkaSettings,
    topics: Topics,
    tenant_id: str,
    handle: str,
    *,
    since: datetime | None = None,
    follow: bool = False,
    revocations: bool = False,
    report: Report | None = None,
    expiries: SignedExpiries | None = None,
) -> AsyncIterator[LogRecord]:
    """The session's records in offset order per partition (events, then revocations too when
    asked), up to the end offsets now; with `follow`, then every new one until cancelled. A
    `session.expired` says whether it carries the registry's signature
    (`registry_signature`: `valid`, `invalid`, `none`, or `not checked` without `expiries`)."""
    key = check_session(tenant_id, handle)
    kafka = new_consumer(
        connection,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await start_consumer(kafka)
    try:
        names = [topics.events, topics.revocations] if revocations else [topics.events]
        chosen: list[TopicPartition] = []
        for name in names:
            ids = [tp.partition for tp in await topic_partitions(kafka, name)]
            chosen.append(TopicPartition(name, partition_for_key(key, ids)))
        kafka.assign(chosen)
        starts: dict[TopicPartition, int]
        if since is None:
            starts = await kafka.beginning_offsets(chosen)
        else:
            starts = await offsets_from(kafka, chosen, since)
        async for tp, record in records_up_to_ends(kafka, starts, report, follow=follow):
            if record.key != key:
                continue
            yield LogRecord(
                topic=tp.topic,
                partition=tp.partition,
                offset=record.offset,
                timestamp=record_time(record.timestamp),
                key=key.decode(),
                body=_with_signature(
                    describe_value(tp.topic, topics, record.value), record, expiries
                ),
            )
    finally:
        await stop_consumer(kafka)
