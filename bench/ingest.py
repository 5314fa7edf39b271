"""How fast the registry folds the event log into PostgreSQL, against a ceiling and a baseline.

    python -m bench.ingest [--events 1000000] [--naive-events 50000] [--partitions 6]
                           [--keep-topics]

Loads a realistic mix (per session: 1 created, about 20 activity, a fifth logged out; a little
disorder and duplication) into fresh topics on the real broker, then measures in the same run:

1. ceiling: raw aiokafka `getmany` + `json.loads` of the same events;
2. naive: one FastStream handler per event, one ORM transaction per event, into PostgreSQL,
   over the first `--naive-events` events;
3. registry: the real `Registry` (consumer group, batches, stored positions) into PostgreSQL;
4. replay: `session-registry rebuild` of the whole log into a fresh PostgreSQL database, in one
   process and with `--workers 2` (two processes sharing the partitions).

The last line prints events/s of each and the ratios. Targets: registry >= 50,000 events/s and
>= 10x naive; replay >= 100,000 events/s. Needs KAFKA_BOOTSTRAP_SERVERS (default
127.0.0.1:9092) and an admin URL of PostgreSQL in SESSIONS_TEST_POSTGRES_URL (else
`deploy/postgres.sh start` is run).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import time
import uuid

import asyncpg  # type: ignore[import-untyped]
from aiokafka import AIOKafkaConsumer

from bench.ingest_naive import naive_projection
from devstack.deploy_scripts import postgres_admin_url
from devstack.scratch_databases import create_database
from devstack.scratch_databases import drop_database as drop_scratch_database
from devstack.secured_cluster import SecuredCluster
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_admin, new_producer
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.partitions import topic_partitions
from session_registry.bootstrap import Registry
from session_registry.runtime import tune_gc
from session_registry.service_layer.rebuild import rebuild
from session_registry.settings import RegistrySettings
from session_registry.workload import Workload, records, sessions_for

TARGET_REGISTRY = 50_000
TARGET_REPLAY = 100_000


def say(*parts: object) -> None:
    """Print a progress line at once (the run is long; output may go to a file)."""
    print(*parts, flush=True)


async def fresh_database(admin_url: str, label: str) -> str:
    """Create an empty PostgreSQL database; return its URL."""
    return await create_database(admin_url, f"bench_{label}_{uuid.uuid4().hex[:8]}")


async def drop_database(admin_url: str, url: str) -> None:
    """Drop a database made by `fresh_database` (ending what connections are left)."""
    name = url.rpartition("/")[2]
    try:
        await drop_scratch_database(admin_url, name)
    except asyncpg.PostgresError as exc:
        say(f"(could not drop {name}: {exc})")


async def load(bootstrap: str | KafkaSettings, topics: Topics, events: int) -> int:
    """Produce about `events` records of the realistic mix; return how many were sent."""
    producer = new_producer(
        _kafka(bootstrap),
        linger_ms=20,
        max_batch_size=512 * 1024,
        max_request_size=8 * 1024 * 1024,
    )
    await producer.start()
    sent = 0
    try:
        workload = Workload(sessions=sessions_for(events))
        futures = []
        for key, value in records(workload):
            futures.append(await producer.send(topics.events, value, key=key))
            sent += 1
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return sent


async def ceiling(bootstrap: str, topics: Topics) -> tuple[int, float]:
    """Raw getmany + json.loads of the whole topic: (events, seconds)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap,
        group_id=None,
        enable_auto_commit=False,
        max_partition_fetch_bytes=8 * 1024 * 1024,
        fetch_max_bytes=64 * 1024 * 1024,
    )
    await consumer.start()
    try:
        partitions = await topic_partitions(consumer, topics.events)
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        remaining = set(partitions)
        count = 0
        started = time.perf_counter()
        while remaining:
            batch = await consumer.getmany(timeout_ms=500, max_records=20_000)
            for records_of_tp in batch.values():
                for record in records_of_tp:
                    json.loads(record.value)
                    count += 1
            for tp in list(remaining):
                if await consumer.position(tp) >= ends[tp]:
                    remaining.discard(tp)
        return count, time.perf_counter() - started
    finally:
        await consumer.stop()


def _kafka(bootstrap: str | KafkaSettings) -> KafkaSettings:
    if isinstance(bootstrap, KafkaSettings):
        return bootstrap
    return KafkaSettings(kafka_bootstrap_servers=bootstrap)


def bench_registry_settings(
    bootstrap: str | KafkaSettings, topics: Topics, database_url: str, group: str | None = None
) -> RegistrySettings:
    """The registry as the benches run it: a group of its own (or `group`; "" for the
    environment's), no sweeper, topics made already."""
    connection = _kafka(bootstrap).model_dump(exclude={"topic_prefix", "topic_partitions"})
    return RegistrySettings(
        **connection,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
        database_url=database_url,
        consumer_group=f"bench-{uuid.uuid4().hex[:8]}" if group is None else group,
        sweep_interval_seconds=0,
        create_topics=False,
    )


async def registry_run(
    bootstrap: str | KafkaSettings, topics: Topics, database_url: str, group: str | None = None
) -> float:
    """The real registry from an empty database until it has caught up: seconds."""
    registry = Registry.from_settings(
        bench_registry_settings(bootstrap, topics, database_url, group)
    )
    await registry.start()  # migrations included, before the clock starts below
    # the group join (the broker's initial rebalance delay) is start-up, not throughput
    await registry.loop.assigned.wait()
    started = time.perf_counter()
    try:
        await registry.wait_until_idle(timeout=3600)
        return time.perf_counter() - started
    finally:
        await registry.stop()


async def delete_topics(bootstrap: str | KafkaSettings, topics: Topics) -> None:
    """Remove the run's topics (a million events is a few hundred MB on the broker)."""
    admin = new_admin(_kafka(bootstrap))
    await admin.start()
    try:
        await admin.delete_topics([spec.name for spec in topics.specs()])
    finally:
        await admin.close()


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else 0.0


async def main(events: int, naive_events: int, partitions: int, keep_topics: bool) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = postgres_admin_url()
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
    await ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap), topics)
    try:
        await measure(bootstrap, admin_url, topics, events, naive_events)
    finally:
        if not keep_topics:
            await delete_topics(bootstrap, topics)


async def measure(
    bootstrap: str, admin_url: str, topics: Topics, events: int, naive_events: int
) -> None:
    """Load the events, then measure the four contenders in turn; print the figures."""
    started = time.perf_counter()
    total = await load(bootstrap, topics, events)
    say(f"loaded {total} events into {topics.events} in {time.perf_counter() - started:.1f} s")

    count, seconds = await ceiling(bootstrap, topics)
    ceiling_rate = _rate(count, seconds)
    say(f"1. ceiling (getmany + json.loads): {count} events, {ceiling_rate:,.0f} events/s")

    naive_url = await fresh_database(admin_url, "naive")
    try:
        naive_count, seconds = await naive_projection(bootstrap, topics, naive_url, naive_events)
    finally:
        await drop_database(admin_url, naive_url)
    naive_rate = _rate(naive_count, seconds)
    say(
        f"2. naive (handler + ORM transaction per event): {naive_count} events, "
        f"{naive_rate:,.0f} events/s"
    )

    registry_url = await fresh_database(admin_url, "registry")
    try:
        seconds = await registry_run(bootstrap, topics, registry_url)
    finally:
        await drop_database(admin_url, registry_url)
    registry_rate = _rate(total, seconds)
    say(
        f"3. registry into PostgreSQL: {total} events in {seconds:.1f} s, "
        f"{registry_rate:,.0f} events/s"
    )

    replay_rates: list[float] = []
    for workers in (1, 2):
        replay_url = await fresh_database(admin_url, "replay")
        try:
            report = await rebuild(
                KafkaSettings(kafka_bootstrap_servers=bootstrap),
                topics,
                replay_url,
                "bench-replay",
                workers=workers,
            )
        finally:
            await drop_database(admin_url, replay_url)
        replay_rates.append(report.events_per_second)
        say(
            f"{3 + workers}. replay (rebuild, {workers} process{'es' if workers > 1 else ''}) "
            f"into PostgreSQL: {report.events} events, {report.sessions} sessions in "
            f"{report.seconds:.1f} s, {report.events_per_second:,.0f} events/s"
        )
    replay_rate = max(replay_rates)

    say(
        f"events/s: ceiling {ceiling_rate:,.0f} | naive {naive_rate:,.0f} | "
        f"registry {registry_rate:,.0f} | replay {replay_rates[0]:,.0f} (1 process), "
        f"{replay_rates[1]:,.0f} (2 processes) || "
        f"registry/naive {registry_rate / max(naive_rate, 1e-9):.1f}x (target >= 10x), "
        f"registry/ceiling {registry_rate / max(ceiling_rate, 1e-9):.2f}, "
        f"registry vs {TARGET_REGISTRY:,} target {registry_rate / TARGET_REGISTRY:.2f}x, "
        f"replay vs {TARGET_REPLAY:,} target {replay_rate / TARGET_REPLAY:.2f}x"
    )


async def secured(events: int, partitions: int) -> None:
    """The cost of TLS + SASL + ACLs + 3 replicas (min ISR 2): the same workload loaded (as
    the gateway's principal) and ingested by the registry (as its own) on the secured
    cluster and on the plain single broker, in this run."""
    admin_url = postgres_admin_url()
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    cluster = SecuredCluster.started()
    plain_topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
    secured_topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
    await ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap), plain_topics)
    await asyncio.to_thread(cluster.environment, secured_topics.prefix)
    runs: dict[str, tuple[str | KafkaSettings, str | KafkaSettings, Topics, str | None]] = {
        "plain": (bootstrap, bootstrap, plain_topics, None),
        "secured": (
            cluster.settings("gateway", secured_topics.prefix, partitions),
            cluster.settings("registry", secured_topics.prefix, partitions),
            secured_topics,
            "",  # the environment's group, the one its ACL names
        ),
    }
    figures: dict[str, tuple[float, float]] = {}
    try:
        for name, (producer_side, registry_side, topics, group) in runs.items():
            started = time.perf_counter()
            total = await load(producer_side, topics, events)
            load_rate = _rate(total, time.perf_counter() - started)
            url = await fresh_database(admin_url, "secured")
            try:
                seconds = await registry_run(registry_side, topics, url, group)
            finally:
                await drop_database(admin_url, url)
            figures[name] = (load_rate, _rate(total, seconds))
            say(
                f"{name}: load {load_rate:,.0f} events/s (acks=all, idempotent), registry "
                f"{figures[name][1]:,.0f} events/s ({total} events)"
            )
    finally:
        await delete_topics(bootstrap, plain_topics)
        await delete_topics(cluster.settings("admin", secured_topics.prefix), secured_topics)
    (plain_load, plain_registry), (secured_load, secured_registry) = figures.values()
    say(
        f"secured/plain: load {secured_load / max(plain_load, 1e-9):.2f}x, registry "
        f"{secured_registry / max(plain_registry, 1e-9):.2f}x (TLS + SASL SCRAM + ACLs + "
        "3 replicas with min.insync.replicas 2, against one plaintext broker)"
    )


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--naive-events", type=int, default=50_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--keep-topics", action="store_true", help="Leave the run's topics.")
    parser.add_argument(
        "--secured",
        action="store_true",
        help="Only load + registry, on the secured cluster (deploy/kafka.sh cluster) and on "
        "the plain broker: the ratio is the cost of security and replication.",
    )
    args = parser.parse_args()
    tune_gc()  # as `session-registry run` and `rebuild` do
    if args.secured:
        asyncio.run(secured(args.events, args.partitions))
        return
    asyncio.run(
        main(args.events, min(args.naive_events, args.events), args.partitions, args.keep_topics)
    )


if __name__ == "__main__":  # the guard matters: rebuild workers are spawned processes
    cli()
