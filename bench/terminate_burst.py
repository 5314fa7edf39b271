"""How fast the registry applies terminations by filter, against its own ingest rate.

    python -m bench.terminate_burst [--sessions 100000] [--tenants 4] [--partitions 6]
                                    [--profile]
    python -m bench.terminate_burst --sessions 1000000 --tenants 1   # issue 18's figure

Seeds `--sessions` sessions (one `session.created` each, over `--tenants` tenants, listed
types) through the real registry into a fresh PostgreSQL database and fresh topics on the real
broker; the time that takes is the baseline (the registry's plain ingest rate). Then one
`{"filter": {}}` termination per tenant is published on `sessions.commands` and the run times,
from the publish:

1. applied: every command has its `applied_commands` row (the read model is updated);
2. relayed: the outbox is empty (every `session.terminated` and revocation is on Kafka);
3. at the gateway: a real gateway follower (auth_gateway's `RevocationWatcher`, in a process of
   its own as a gateway is, reading the revocations topic from its start) holds every
   revocation in its table;
4. revoked everywhere: both 2 and 3 (the issue's "revoked at every gateway");
5. idle: the registry has consumed its own `session.terminated` events back from the log.

It then checks that every session is terminated and prints sessions/s of each stage with the
ratio against the baseline, and the gateway table's memory per million revocations (its
slots, 13 bytes each, over the revocations it holds; target 64 MB). `--profile` runs the
registry's event loop under cProfile during the terminations and prints the hot spots.
Needs KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092) and an admin URL of PostgreSQL in
SESSIONS_TEST_POSTGRES_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import multiprocessing
import os
import pstats
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer
from sqlalchemy import func, select

from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from bench.ingest import (
    bench_registry_settings,
    delete_topics,
    drop_database,
    fresh_database,
    say,
)
from devstack.deploy_scripts import postgres_admin_url
from read_model.tables import applied_commands, revocations, sessions
from session_contracts.codec import encode
from session_contracts.handles import record_key
from session_contracts.kafka_admin import ensure_topics
from session_contracts.models import SessionFilter, TerminateSessions
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.adapters.outbox import outbox_size
from session_registry.bootstrap import Registry
from session_registry.runtime import tune_gc
from session_registry.workload import Workload, past_start, records

POLL_SECONDS = 0.05
TENANT_PREFIX = "burst-"
TABLE_BYTES_PER_SLOT = 13  # RevocationTable: 8-byte hash, 4-byte expiry, 1-byte reason
TARGET_MB_PER_MILLION = 64.0


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


def follow_revocations(bootstrap: str, topic: str, held: Any, slots: Any, stop: Any) -> None:
    """A gateway's revocation follower, in a process of its own: publishes how many
    revocations its table holds (`held`) and its slots (`slots`) until `stop` is set."""

    async def follow() -> None:
        table = RevocationTable()
        watcher = RevocationWatcher(
            KafkaSettings(kafka_bootstrap_servers=bootstrap), topic, None, table
        )
        task = asyncio.create_task(watcher.run())
        try:
            while not stop.is_set():
                held.value = len(table)
                slots.value = table.capacity
                await asyncio.sleep(POLL_SECONDS / 2)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    asyncio.run(follow())


class Gateway:
    """The follower process and the figures it shares."""

    def __init__(self, bootstrap: str, topic: str) -> None:
        context = multiprocessing.get_context("spawn")  # no copy of this process's loop
        self.held = context.Value("q", 0)
        self.slots = context.Value("q", 0)
        self._stop = context.Event()
        self._process = context.Process(
            target=follow_revocations,
            args=(bootstrap, topic, self.held, self.slots, self._stop),
            name="bench-gateway",
        )

    def start(self) -> None:
        self._process.start()

    def stop(self) -> None:
        self._stop.set()
        self._process.join(30)
        if self._process.is_alive():
            self._process.terminate()
            self._process.join()


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
    gateway = Gateway(bootstrap, topics.revocations)
    gateway.start()  # follows the (empty) revocations topic from its start
    await registry.start()
    try:
        await registry.loop.assigned.wait()
        started = time.perf_counter()
        await registry.wait_until_idle(timeout=3600)
        seed_seconds = time.perf_counter() - started
        baseline = n / seed_seconds
        say(f"baseline: registry ingest of {n} session.created in {seed_seconds:.1f} s")
        await burst(registry, gateway, bootstrap, topics, args, baseline)
    finally:
        await registry.stop()
        gateway.stop()


async def burst(
    registry: Registry,
    gateway: Gateway,
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
        if "applied" not in times:  # empty before the commands' transaction commits too
            return False
        async with engine.connect() as conn:
            return await outbox_size(conn) == 0

    expected: list[int] = []  # the revocations the registry wrote, once applied

    async def at_gateway() -> bool:
        if not expected:
            if "applied" not in times:
                return False
            async with engine.connect() as conn:
                count = await conn.execute(select(func.count()).select_from(revocations))
                expected.append(int(count.scalar_one()))
        return int(gateway.held.value) >= expected[0]

    async def idle() -> bool:
        return await registry._idle()

    profiler = cProfile.Profile() if args.profile else None
    if profiler is not None:
        profiler.enable()
    started = time.perf_counter()
    items = [(record_key(c.tenant_id, str(c.command_id)), encode(c)) for c in batch]
    await produce(bootstrap, topics.commands, items)
    times: dict[str, float] = {}
    stages = {"applied": applied, "outbox empty": relayed, "at the gateway": at_gateway}
    pending = dict(stages)
    while pending:  # the three may finish in any order: time each as it does
        for what, condition in list(pending.items()):
            if await condition():
                times[what] = time.perf_counter() - started
                del pending[what]
        if time.perf_counter() - started > 3600:
            raise TimeoutError(f"not reached after 3600 s: {sorted(pending)}")
        await asyncio.sleep(POLL_SECONDS)
    times["revoked everywhere"] = max(times["outbox empty"], times["at the gateway"])
    await wait_for(idle, "idle")
    times["idle"] = time.perf_counter() - started
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
    say(
        f"terminated in the read model: {terminated} of {n}; commands reported {reported}; "
        f"revocations at the gateway {int(gateway.held.value)} of {expected[0]}"
    )
    if terminated != n or reported != n:
        raise SystemExit("not every session was terminated")

    rates = {what: n / seconds for what, seconds in times.items()}
    for what, seconds in times.items():
        rate = rates[what]
        say(f"{what}: {seconds:.1f} s, {rate:,.0f} sessions/s, {rate / baseline:.2f}x ingest")
    held, slots = int(gateway.held.value), int(gateway.slots.value)
    per_million = slots * TABLE_BYTES_PER_SLOT / held * 1e6 / 2**20
    say(
        f"gateway table: {held} revocations in {slots} slots, "
        f"{slots * TABLE_BYTES_PER_SLOT / 2**20:.1f} MB = {per_million:.1f} MB per million -> "
        f"{'OK' if per_million <= TARGET_MB_PER_MILLION else 'OVER TARGET'}"
        f" (target <= {TARGET_MB_PER_MILLION:.0f})"
    )
    load = os.getloadavg()
    say(
        f"sessions/s: ingest baseline {baseline:,.0f} | applied {rates['applied']:,.0f} | "
        f"revoked everywhere {rates['revoked everywhere']:,.0f} | idle {rates['idle']:,.0f} || "
        f"applied/ingest {rates['applied'] / baseline:.2f}x (target 3x), "
        f"revoked everywhere/ingest {rates['revoked everywhere'] / baseline:.2f}x (target 1x), "
        f"idle/ingest {rates['idle'] / baseline:.2f}x (load average {load[0]:.2f})"
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
