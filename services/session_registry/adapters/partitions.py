"""The partitions of a topic as the broker knows them, which one a key maps to, and where a
moment in time falls in each."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, Callable, Sequence
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.partitioner import DefaultPartitioner

TOPIC_WAIT_SECONDS = 5.0
"""How long a topic the broker does not list is asked for again (`topic_partitions`)."""
POLL_MS = 500
"""How long one fetch of `records_up_to_ends` waits for records."""


async def topic_partitions(
    consumer: AIOKafkaConsumer, topic: str, wait: float = TOPIC_WAIT_SECONDS
) -> list[TopicPartition]:
    """Every partition of a topic. One the broker does not list is asked for again, every
    0.2 s for up to `wait` seconds (a topic just created may not have reached the metadata of
    the broker asked yet); then LookupError names it. (Until 2026-12-03: 50 times, about
    14 s before a mistyped topic prefix was reported.)"""
    deadline = time.monotonic() + wait
    while True:
        # the consumer's public metadata calls keep only subscribed topics; ask for all
        cluster = await consumer._client.fetch_all_metadata()
        found = cluster.partitions_for_topic(topic)
        if found:
            return [TopicPartition(topic, p) for p in sorted(found)]
        if time.monotonic() >= deadline:
            raise LookupError(f"topic {topic!r} not found on the broker")
        await asyncio.sleep(0.2)


def partition_for_key(key: bytes, partitions: Sequence[int]) -> int:
    """The partition a keyed record goes to: what our producers' partitioner chooses.

    Every producer of the contract is an `AIOKafkaProducer` with its default partitioner,
    aiokafka's `DefaultPartitioner`: murmur2 of the key, masked to 31 bits, modulo the number of
    partitions, the same as the Java client's for a keyed record (and kcat's `-X
    partitioner=murmur2_random`). Reused here rather than reimplemented.
    """
    ordered = sorted(partitions)
    if not ordered:
        raise ValueError("a topic has at least one partition")
    return int(DefaultPartitioner()(key, ordered, ordered))


def to_millis(moment: datetime) -> int:
    """A timezone-aware moment as Kafka's record timestamp (milliseconds since the epoch)."""
    if moment.tzinfo is None:
        raise ValueError(f"{moment.isoformat()} has no time zone")
    return int(moment.timestamp() * 1000)


async def offsets_after(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], moment: datetime
) -> dict[TopicPartition, int]:
    """Per partition, the offset of the first record stamped after `moment` (its end offset
    when there is none): where a log that had reached `moment` ended."""
    return await _offsets_at(consumer, partitions, to_millis(moment) + 1)


async def offsets_from(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], moment: datetime
) -> dict[TopicPartition, int]:
    """Per partition, the offset of the first record stamped at or after `moment` (its end
    offset when there is none)."""
    return await _offsets_at(consumer, partitions, to_millis(moment))


async def _offsets_at(
    consumer: AIOKafkaConsumer, partitions: Sequence[TopicPartition], millis: int
) -> dict[TopicPartition, int]:
    if not partitions:
        return {}
    found = await consumer.offsets_for_times({tp: millis for tp in partitions})
    ends: dict[TopicPartition, int] = await consumer.end_offsets(list(partitions))
    return {tp: ends[tp] if found.get(tp) is None else found[tp].offset for tp in partitions}


async def records_up_to_ends(
    kafka: AIOKafkaConsumer,
    starts: dict[TopicPartition, int],
    report: Callable[[int, int], None] | None = None,
    *,
    follow: bool = False,
) -> AsyncGenerator[tuple[TopicPartition, Any]]:
    """Each record of the assigned partitions in `starts`, from there up to their end offsets
    now, with its partition; `report` told (records read, records to read) after each fetch.
    With `follow`, every later record too, until the caller stops reading."""
    for tp, start in starts.items():
        kafka.seek(tp, start)
    ends: dict[TopicPartition, int] = await kafka.end_offsets(list(starts))
    remaining = {tp for tp in starts if starts[tp] < ends[tp]}
    total = sum(max(0, ends[tp] - starts[tp]) for tp in starts)
    done = 0
    while remaining or follow:
        batch = await kafka.getmany(*(starts if follow else remaining), timeout_ms=POLL_MS)
        for tp, records in batch.items():
            for record in records:
                if record.offset < ends[tp]:
                    done += 1
                elif not follow:
                    continue
                yield tp, record
        if report is not None:
            report(done, total)
        for tp in list(remaining):
            if await kafka.position(tp) >= ends[tp]:
                remaining.discard(tp)
