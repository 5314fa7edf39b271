"""How fast the registry applies terminations by filter, against its own ingest rate.

    python -m bench.terminate_burst [--sessions 100000] [--tenants 4] [--partitions 6]
                                    [--profile]

Seeds `--sessions` sessions (one `session.created` each, over `--tenants` tenants, listed
types) through the real registry into a fresh PostgreSQL database and fresh topics on the real
broker; the time that takes is the baseline (the registry's plain ingest rate). Then one
`{"filter": {}}` termination per tenant is published on `sessions.commands` and the run times,
from the publish:

1. applied: every command has its `applied_commands` row (the read model is updated);
2. relayed: the outbox is empty (every `session.terminated` and revocation is on Kafka);
3. idle: the registry has consumed its own `session.terminated` events back from the log.

It then checks that every session is terminated and prints sessions/s of each stage with the
ratio against the baseline. `--profile` runs the registry's event loop under cProfile during
the terminations and prints the hot spots. Needs KAFKA_BOOTSTRAP_SERVERS (default
127.0.0.1:9092) and an admin URL of PostgreSQL in SESSIONS_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from bench.ingest import (
    bench_registry_settings,
    delete_topics,
    drop_database,
    fresh_database,
    say,
)
from bench.soak_stack import past_start
from devstack.deploy_scripts import postgres_admin_url
from read_model.tables import applied_commands, sessions
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_admin import ensure_topics
from session_contracts.models import SessionFilter, TerminateSessions
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.outbox import outbox_size
from session_registry.bootstrap import Registry
from session_registry.runtime import tune_gc
from session_registry.workload import Workload, records

POLL_SECONDS = 0.05
TENANT_PREFIX = "burst-"


async def produce(bootstrap: str, topic: str, items: list[tuple[bytes, bytes]]) -> None:
    """Send these (key, value) records and wait for every ack."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
    )
    await producer.start()
    try:
        futures = [await producer.send(topic, value, key=key) for key, value in items]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


def commands(tenants: int) -> list[TerminateSessions]:
    """One empty-filter termination per tenant, requested now."""
    now = datetime.now(UTC)
    return [
        TerminateSessions(
            command_id=uuid.uuid4(),
            requested_at=now,
            tenant_id=f"{TENANT_PREFIX}{i}",
            requested_by="bench-admin",
            filter=SessionFilter(),
            confirmed_at=now,
        )
        for i in range(tenants)
    ]


async def wait_for(
    condition: Callable[[], Awaitable[bool]], what: str, limit: float = 3600
) -> None:
    """Poll an async predicate until true (generous deadline)."""
    deadline = time.monotonic() + limit
    while not await condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} not reached after {limit} s")
        await asyncio.sleep(POLL_SECONDS)


async def run(args: argparse.Namespace) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = postgres_admin_url()
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=args.partitions)
    await ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap), topics)
    url = await fresh_database(admin_url, "terminate")
    try:
        await measure(bootstrap, topics, url, args)
    finally:
        await drop_database(admin_url, url)
        await delete_topics(bootstrap, topics)


async def measure(bootstrap: str, topics: Topics, url: str, args: argparse.Namespace) -> None:
    """Seed, baseline, then the burst; print the figures."""
    n = args.sessions
    workload = Workload(
        sessions=n,
        tenants=args.tenants,
        tenant_prefix=TENANT_PREFIX,
        session_types=("browser", "mobile"),
        activity=0,
        terminated_share=0.0,
        disorder_share=0.0,
        duplicate_share=0.0,
        seed=11,
        start=past_start(n),
    )
    started = time.perf_counter()
    await produce(bootstrap, topics.events, list(records(workload)))
    say(f"produced {n} session.created in {time.perf_counter() - started:.1f} s")

    registry = Registry.from_settings(bench_registry_settings(bootstrap, topics, url))
    await registry.start()
    try:
        await registry.loop.assigned.wait()
        started = time.perf_counter()
        await registry.wait_until_idle(timeout=3600)
        seed_seconds = time.perf_counter() - started
        baseline = n / seed_seconds
        say(f"baseline: registry ingest of {n} session.created in {seed_seconds:.1f} s")
        await burst(registry, bootstrap, topics, args, baseline)
    finally:
        await registry.stop()


async def burst(
    registry: Registry,
    bootstrap: str,
    topics: Topics,
    args: argparse.Namespace,
    baseline: float,
) -> None:
    """Publish the commands and time the three stages."""
    n = args.sessions
    engine = registry.engine
    batch = commands(args.tenants)

    async def applied() -> bool:
        async with engine.connect() as conn:
            count = (
                await conn.execute(select(func.count()).select_from(applied_commands))
            ).scalar_one()
        return int(count) >= len(batch)

    async def relayed() -> bool:
        async with engine.connect() as conn:
            return await outbox_size(conn) == 0

    async def idle() -> bool:
        return await registry._idle()

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    items = [(record_key(c.tenant_id, str(c.command_id)), encode(c)) for c in batch]
    await produce(bootstrap, topics.commands, items)
    times: list[float] = []
    for condition, what in ((applied, "applied"), (relayed, "outbox empty"), (idle, "idle")):
        await wait_for(condition, what)
        times.append(time.perf_counter() - started)
    if profiler is not None:
        profiler.disable()

    async with engine.connect() as conn:
        terminated = (
            await conn.execute(
                select(func.count()).select_from(sessions).where(sessions.c.state == "terminated")
            )
        ).scalar_one()
        reported = (
            await conn.execute(select(func.sum(applied_commands.c.terminated)))
        ).scalar_one()
    say(f"terminated in the read model: {terminated} of {n}; commands reported {reported}")
    if terminated != n or reported != n:
        raise SystemExit("not every session was terminated")

    rates = [n / t for t in times]
    for (label, seconds), rate in zip(
        (("applied (read model)", times[0]), ("outbox empty", times[1]), ("idle", times[2])),
        rates,
        strict=True,
    ):
        say(f"{label}: {seconds:.1f} s, {rate:,.0f} sessions/s, {rate / baseline:.2f}x ingest")
    load = os.getloadavg()
    say(
        f"sessions/s: ingest baseline {baseline:,.0f} | applied {rates[0]:,.0f} | "
        f"outbox empty {rates[1]:,.0f} | idle {rates[2]:,.0f} || "
        f"applied/ingest {rates[0] / baseline:.2f}x, idle/ingest {rates[2] / baseline:.2f}x "
        f"(load average {load[0]:.2f})"
    )
    if profiler is not None:
        stats = pstats.Stats(profiler).strip_dirs()
        stats.sort_stats("tottime").print_stats(30)
        stats.sort_stats("cumulative").print_stats(40)


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--tenants", type=int, default=4)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--profile", action="store_true", help="cProfile the terminations.")
    args = parser.parse_args()
    tune_gc()  # as `session-registry run` does
    asyncio.run(run(args))


if __name__ == "__main__":
    cli()
