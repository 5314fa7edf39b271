"""The registry's positions for SREs: show them, and move them while no registry runs.

The registry's positions live in its database, written in the same transaction as the rows
they produced (`adapters.positions`); the offsets it commits to Kafka are a courtesy to lag
tools and are never read back. So `kafka-consumer-groups --reset-offsets` moves nothing:
`positions set` is how a registry is made to re-read (or skip) records. It refuses while any
member of the consumer group is connected (`adapters.group_members`): a running registry
holds the positions it seeked to in memory and would write its own over ours.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from read_model.database import open_store
from read_model.unit_of_work import UnitOfWork
from session_contracts.escaping import escape_reason
from session_contracts.kafka_clients import new_admin, new_consumer, start_consumer, stop_consumer
from session_contracts.settings import KafkaSettings
from session_registry.adapters.group_members import GroupMember, group_members
from session_registry.adapters.partitions import offsets_from, topic_partitions
from session_registry.adapters.positions import load_positions, overwrite_positions
from session_registry.service_layer.status import PartitionStatus


class RegistryRunning(RuntimeError):
    """Members of the consumer group are connected: positions must not move under them."""

    def __init__(self, group: str, members: list[GroupMember], when: str) -> None:
        # a member names itself: any client allowed on the group may pick ESC or U+202E
        hosts = ", ".join(
            sorted({escape_reason(f"{m.client_id}@{m.client_host}", 200) for m in members})
        )
        super().__init__(
            f"{len(members)} member(s) of consumer group {group!r} {when} ({hosts}): stop every "
            "registry of the group first (a killed or static member counts until its session "
            "times out, SESSIONS_SESSION_TIMEOUT_MS)"
        )
        self.members = members


@dataclass(frozen=True)
class Standing(PartitionStatus):
    """One partition: the stored position, the log's bounds, and the Kafka group offset (its
    lag and whether it is past the end as `status` reckons them)."""

    earliest: int
    committed: int | None

    def as_json(self) -> dict[str, Any]:
        """A line of `positions show --json`."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "stored": self.stored,
            "earliest": self.earliest,
            "end": self.end,
            "lag": self.lag,
            "past_end": self.past_end,
            "kafka_committed": self.committed,
        }


@dataclass(frozen=True)
class Move:
    """One partition's stored position before and after `positions set`."""

    topic: str
    partition: int
    before: int | None
    after: int

    def as_json(self) -> dict[str, Any]:
        """A line of `positions set --json`."""
        return {
            "topic": self.topic,
            "partition": self.partition,
            "before": self.before,
            "after": self.after,
        }


@dataclass(frozen=True)
class Target:
    """Where to move: exactly one of a moment, an offset, the end or the beginning."""

    moment: datetime | None = None
    offset: int | None = None
    latest: bool = False
    earliest: bool = False

    def __post_init__(self) -> None:
        given = [self.moment is not None, self.offset is not None, self.latest, self.earliest]
        if sum(given) != 1:
            raise ValueError(
                "give exactly one of --to-datetime, --to-offset, --to-latest, --to-earliest"
            )


async def _committed(connection: KafkaSettings, group: str) -> dict[TopicPartition, int]:
    admin = new_admin(connection)
    await admin.start()
    try:
        offsets = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    return {tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


async def _log_bounds(
    connection: KafkaSettings, topic_names: Collection[str]
) -> tuple[
    AIOKafkaConsumer, list[TopicPartition], dict[TopicPartition, int], dict[TopicPartition, int]
]:
    kafka = new_consumer(connection)
    await start_consumer(kafka)
    try:
        partitions: list[TopicPartition] = []
        for name in topic_names:
            partitions.extend(await topic_partitions(kafka, name))
        earliest = await kafka.beginning_offsets(partitions)
        ends = await kafka.end_offsets(partitions)
    except BaseException:
        await stop_consumer(kafka)
        raise
    return kafka, partitions, earliest, ends


async def show_positions(
    connection: KafkaSettings, database_url: str, consumer: str, topic_names: Collection[str]
) -> list[Standing]:
    """Every partition of these topics: stored position, log bounds, Kafka's group offset."""
    store = open_store(database_url)
    try:
        async with store.engine.connect() as conn:
            stored = await load_positions(conn, consumer, set(topic_names))
    finally:
        await store.dispose()
    kafka, partitions, earliest, ends = await _log_bounds(connection, topic_names)
    await stop_consumer(kafka)
    committed = await _committed(connection, consumer)
    return [
        Standing(
            topic=tp.topic,
            partition=tp.partition,
            stored=stored.get((tp.topic, tp.partition)),
            end=ends[tp],
            earliest=earliest[tp],
            committed=committed.get(tp),
        )
        for tp in partitions
    ]


async def set_positions(
    connection: KafkaSettings,
    database_url: str,
    consumer: str,
    topic_names: Collection[str],
    target: Target,
    *,
    partitions: Collection[int] | None = None,
    dry_run: bool = False,
) -> list[Move]:
    """Move the stored positions of `consumer` on these topics (all partitions, or those
    given) to `target`; refuse while a member of the group `consumer` is connected."""
    await refuse_while_running(connection, consumer, "are connected")
    kafka, found, earliest, ends = await _log_bounds(connection, topic_names)
    try:
        chosen = [tp for tp in found if partitions is None or tp.partition in partitions]
        missing = set(partitions or ()) - {tp.partition for tp in found}
        if missing:
            raise ValueError(f"no partition {sorted(missing)} in {sorted(topic_names)}")
        if target.moment is not None:
            new = await offsets_from(kafka, chosen, target.moment)
        elif target.latest:
            new = {tp: ends[tp] for tp in chosen}
        elif target.earliest:
            new = {tp: earliest[tp] for tp in chosen}
        else:
            assert target.offset is not None
            for tp in chosen:
                if not earliest[tp] <= target.offset <= ends[tp]:
                    raise ValueError(
                        f"offset {target.offset} is outside {tp.topic} partition "
                        f"{tp.partition}'s log [{earliest[tp]}, {ends[tp]}]"
                    )
            new = {tp: target.offset for tp in chosen}
    finally:
        await stop_consumer(kafka)
    store = open_store(database_url)
    try:
        async with store.engine.connect() as conn:
            before = await load_positions(conn, consumer, set(topic_names))
        moves = [
            Move(tp.topic, tp.partition, before.get((tp.topic, tp.partition)), new[tp])
            for tp in chosen
        ]
        if dry_run:
            return moves
        positions = {(m.topic, m.partition): m.after for m in moves}

        async def _write(uow: UnitOfWork) -> None:
            await overwrite_positions(uow, consumer, positions)

        await UnitOfWork(store).run(_write)
    finally:
        await store.dispose()
    # started between the check and the commit: it may hold the old positions
    await refuse_while_running(
        connection,
        consumer,
        "joined while the positions were written; restart them so they read the new positions",
    )
    return moves


async def refuse_while_running(connection: KafkaSettings, group: str, when: str) -> None:
    """Raise `RegistryRunning` (saying `when`) while a member of consumer group `group` is
    connected: what a tool writes for a stopped registry, a running one overwrites or never
    reads."""
    members = await group_members(connection, group)
    if members:
        raise RegistryRunning(group, members, when)
