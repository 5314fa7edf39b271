"""How fast the registry folds the event log into PostgreSQL, against a ceiling and a baseline.

    python -m bench.ingest [--events 1000000] [--naive-events 50000] [--partitions 6]
                           [--keep-topics] [--instance-blocks 2] [--observability-events 200000]
                           [--observability-blocks 4] [--observability-only]

Loads a realistic mix (per session: 1 created, about 20 activity, a fifth logged out; a little
disorder and duplication) into fresh topics on the real broker, then measures in the same run:

1. ceiling: raw aiokafka `getmany` + `json.loads` of the same events;
2. naive: one FastStream handler per event, one ORM transaction per event, into PostgreSQL,
   over the first `--naive-events` events;
3. registry: the real `Registry` (consumer group, batches, stored positions) into PostgreSQL;
4. replay: `session-registry rebuild` of the whole log into a fresh PostgreSQL database, in one
   process and with `--workers 2` (two processes sharing the partitions);
5. instances: the registry in processes of its own, one instance against two (one consumer
   group, the partitions split between them), in `--instance-blocks` ABBA blocks (one, two,
   two, one), the ceiling measured again before and after each block; each round into a fresh
   database, every instance holding its partitions before any record is fetched. Prints
   per block one instance's rate over the block's ceiling and two instances' speed-up over
   one, their medians, and one instance's resident memory (RSS) sampled every
   `RSS_SECONDS` over each of its rounds;
6. observability on/off: the registry over `--observability-events` events of their own
   topics, with its metrics and tracing on (`SESSIONS_REGISTRY_METRICS`, an OpenTelemetry SDK
   provider installed, /metrics scraped every second) and off, each round a process of its
   own (a tracer provider cannot be uninstalled) into a fresh database, in ABBA blocks
   (`bench.abba`): the median ratio on/off of the wall-clock time and of the registry
   process's CPU time, with their spread. Target: within 1.05.

A summary line prints events/s of each and the ratios, the last one the on/off figure. Targets:
registry >= 50,000 events/s and >= 10x naive; replay >= 100,000 events/s; issue 18: one
instance >= 0.5 of the ceiling, two instances >= 1.8x one, replay in one process >= 0.6 of the
ceiling. Needs
KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:9092) and an admin URL of PostgreSQL in
SESSIONS_TEST_POSTGRES_URL (else `deploy/postgres.sh start` is run).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
from aiokafka import AIOKafkaConsumer

from bench.abba import ORDER, block_ratio, spread
from bench.ingest_naive import naive_projection
from devstack.deploy_scripts import postgres_admin_url
from devstack.scratch_databases import create_database
from devstack.scratch_databases import drop_database as drop_scratch_database
from devstack.secured_cluster import SecuredCluster
from session_contracts import kafka_admin
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_producer
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
TARGET_CEILING_SHARE = 0.5
TARGET_TWO_INSTANCES = 1.8
TARGET_REPLAY_SHARE = 0.6
RSS_SECONDS = 0.5
INSTANCE_START_SECONDS = 120.0
OBSERVABILITY_TARGET = 1.05
SCRAPE_SECONDS = 1.0


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
    bootstrap: str | KafkaSettings,
    topics: Topics,
    database_url: str,
    group: str | None = None,
    *,
    metrics: bool = True,
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
        registry_metrics=metrics,
    )


async def registry_run(
    bootstrap: str | KafkaSettings,
    topics: Topics,
    database_url: str,
    group: str | None = None,
    *,
    metrics: bool = True,
    scrape: bool = False,
) -> float:
    """The real registry from an empty database until it has caught up: seconds."""
    seconds, _ = await timed_registry_run(
        bootstrap, topics, database_url, group, metrics=metrics, scrape=scrape
    )
    return seconds


async def timed_registry_run(
    bootstrap: str | KafkaSettings,
    topics: Topics,
    database_url: str,
    group: str | None = None,
    *,
    metrics: bool = True,
    scrape: bool = False,
) -> tuple[float, float]:
    """`registry_run`: (seconds, CPU seconds this process spent meanwhile, every thread).

    `metrics`: `registry_metrics`; `scrape`: serve the operations port and scrape /metrics
    every `SCRAPE_SECONDS` meanwhile (as Prometheus would, more often)."""
    registry = Registry.from_settings(
        bench_registry_settings(bootstrap, topics, database_url, group, metrics=metrics)
    )
    port = registry.serve_operations() if scrape else None
    await registry.start()  # migrations included, before the clock starts below
    # the group join (the broker's initial rebalance delay) is start-up, not throughput
    await registry.loop.assigned.wait()
    scraper = None
    if port is not None:
        scraped = asyncio.Event()
        scraper = asyncio.create_task(scrape_every(port, scraped))
        await scraped.wait()  # the first scrape's one-time costs (imports, client) are start-up
    started, cpu = time.perf_counter(), time.process_time()
    try:
        await registry.wait_until_idle(timeout=3600)
        return time.perf_counter() - started, time.process_time() - cpu
    finally:
        if scraper is not None:
            scraper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await scraper
        await registry.stop()


async def scrape_every(port: int, scraped: asyncio.Event) -> None:
    """GET /metrics every `SCRAPE_SECONDS` until cancelled (each must answer 200); `scraped`
    is set after the first."""
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
        while True:
            response = await client.get("/metrics")
            response.raise_for_status()
            scraped.set()
            await asyncio.sleep(SCRAPE_SECONDS)


async def delete_topics(bootstrap: str | KafkaSettings, topics: Topics) -> None:
    """Remove the run's topics (a million events is a few hundred MB on the broker)."""
    await kafka_admin.delete_topics(_kafka(bootstrap), topics)


def _rate(events: int, seconds: float) -> float:
    return events / seconds if seconds > 0 else 0.0


async def main(
    events: int,
    naive_events: int,
    partitions: int,
    keep_topics: bool,
    observability_events: int,
    observability_blocks: int,
    instance_blocks: int = 0,
) -> None:
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = postgres_admin_url()
    if events > 0:
        topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
        await ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap), topics)
        try:
            total = await measure(bootstrap, admin_url, topics, events, naive_events)
            if instance_blocks > 0:
                await instances(bootstrap, admin_url, topics, total, instance_blocks)
        finally:
            if not keep_topics:
                await delete_topics(bootstrap, topics)
    if observability_blocks > 0:
        await observability(
            bootstrap, admin_url, partitions, observability_events, observability_blocks
        )


async def measure(
    bootstrap: str, admin_url: str, topics: Topics, events: int, naive_events: int
) -> int:
    """Load the events, then measure the four contenders in turn; print the figures; return
    how many events were loaded."""
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
        f"replay vs {TARGET_REPLAY:,} target {replay_rate / TARGET_REPLAY:.2f}x, "
        f"replay (1 process)/ceiling {replay_rates[0] / max(ceiling_rate, 1e-9):.2f} "
        f"(target >= {TARGET_REPLAY_SHARE})"
    )
    return total


@dataclass
class InstanceRound:
    """One round of `instances`: how long the instances took together, and their figures."""

    seconds: float
    cpu_seconds: list[float]
    rss: list[list[tuple[float, int]]]
    """Per instance: (seconds since it started fetching, resident bytes), every RSS_SECONDS."""
    database_cpu_seconds: float = 0.0
    """CPU time of the PostgreSQL backends serving the round's database meanwhile."""


async def instances(
    bootstrap: str, admin_url: str, topics: Topics, total: int, blocks: int
) -> None:
    """One registry instance against two sharing the partitions, in ABBA blocks, each round
    its own processes and a fresh database; the ceiling before and after each block."""
    say(
        f"instances: {total} events, {blocks} ABBA blocks (one, two, two, one), each round "
        "registry processes of their own into a fresh database"
    )
    shares: list[float] = []
    speedups: list[float] = []
    for block in range(blocks):
        ceilings = [_rate(*await ceiling(bootstrap, topics))]
        rounds: dict[str, list[InstanceRound]] = {"A": [], "B": []}
        for side in ORDER:
            url = await fresh_database(admin_url, "instances")
            try:
                rounds[side].append(
                    await instances_round(bootstrap, topics, url, 1 if side == "A" else 2)
                )
            finally:
                await drop_database(admin_url, url)
        ceilings.append(_rate(*await ceiling(bootstrap, topics)))
        one = [r.seconds for r in rounds["A"]]
        two = [r.seconds for r in rounds["B"]]
        one_rate = _rate(total * 2, sum(one))
        shares.append(one_rate / (sum(ceilings) / 2))
        speedups.append(1 / block_ratio(one, two))
        cpu_one = [sum(r.cpu_seconds) for r in rounds["A"]]
        cpu_two = [sum(r.cpu_seconds) for r in rounds["B"]]
        db_one = sum(r.database_cpu_seconds for r in rounds["A"])
        db_two = sum(r.database_cpu_seconds for r in rounds["B"])
        say(
            f"  block {block + 1}: ceiling {ceilings[0]:,.0f} / {ceilings[1]:,.0f} events/s; "
            f"one instance {one[0]:.2f} {one[1]:.2f} s ({one_rate:,.0f} events/s, "
            f"{shares[-1]:.2f} of the ceiling), two {two[0]:.2f} {two[1]:.2f} s "
            f"({speedups[-1]:.2f}x one); CPU per event: one instance "
            f"{sum(cpu_one) / (2 * total) * 1e6:.1f} us + its PostgreSQL backends "
            f"{db_one / (2 * total) * 1e6:.1f} us, two instances "
            f"{sum(cpu_two) / (2 * total) * 1e6:.1f} us + "
            f"{db_two / (2 * total) * 1e6:.1f} us (both processes; the ceiling "
            f"{1e6 / (sum(ceilings) / 2):.1f} us wall per event in one process)"
        )
        for n, round_ in enumerate(rounds["A"], 1):
            say(f"    one instance, round {n}: RSS {_rss_summary(round_.rss[0])}")
    load = os.getloadavg()
    say(
        f"one instance/ceiling: {spread(shares)} (target >= {TARGET_CEILING_SHARE}); "
        f"two instances/one: {spread(speedups)} (target >= {TARGET_TWO_INSTANCES}); "
        f"load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}, {os.cpu_count()} cores"
    )


def _rss_summary(samples: list[tuple[float, int]]) -> str:
    """Start, quarters and end of a run's RSS samples, with the peak, in MB."""
    if not samples:
        return "no samples"
    mb = [rss / 2**20 for _, rss in samples]
    picks = [mb[min(len(mb) - 1, round(q * (len(mb) - 1)))] for q in (0, 0.25, 0.5, 0.75, 1)]
    return (
        f"{' -> '.join(f'{m:.0f}' for m in picks)} MB at 0/25/50/75/100% of "
        f"{samples[-1][0]:.1f} s ({len(samples)} samples), peak {max(mb):.0f} MB"
    )


async def instances_round(
    bootstrap: str, topics: Topics, database_url: str, count: int
) -> InstanceRound:
    """`count` registry processes in one consumer group from an empty database until each
    has caught up. None fetches before every partition is held by one of them (no rebalance
    inside the timing); the time is from the first to start fetching to the last caught up."""
    group = f"bench-{uuid.uuid4().hex[:8]}"
    command = [
        sys.executable, "-m", "bench.ingest", "--instance-child",
        "--child-topic-prefix", topics.prefix, "--partitions", str(topics.partitions),
        "--child-database-url", database_url, "--child-group", group,
    ]  # fmt: skip
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    with tempfile.TemporaryFile() as errors:
        children = [
            await asyncio.create_subprocess_exec(
                *command,
                env=env,
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=errors,
            )
            for _ in range(count)
        ]
        try:
            return await _run_instances(
                children, topics.partitions * 2, database_url.rpartition("/")[2]
            )
        except BaseException:
            for child in children:
                if child.returncode is None:
                    child.kill()
            errors.seek(0)
            say(f"instance round failed; stderr:\n{errors.read()[-3000:].decode(errors='replace')}")
            raise


def database_cpu_seconds(database: str) -> dict[int, float]:
    """CPU seconds so far of each PostgreSQL backend connected to `database` (a local server;
    `/proc/<pid>/cmdline` reads `postgres: <user> <database> ...`)."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[int, float] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as cmdline:
                words = cmdline.read().replace(b"\0", b" ").split()
            if len(words) < 3 or words[0] != b"postgres:" or words[2] != database.encode():
                continue
            with open(f"/proc/{entry}/stat") as stat:
                fields = stat.read().rpartition(")")[2].split()
            found[int(entry)] = (int(fields[11]) + int(fields[12])) / ticks  # utime, stime
        except (OSError, ValueError, IndexError):
            continue  # gone meanwhile, or not ours to read
    return found


async def _run_instances(
    children: list[asyncio.subprocess.Process], partitions: int, database: str
) -> InstanceRound:
    """Wait until the children's assignments split all `partitions` (events and commands),
    say go, and collect their figures."""
    held: list[list[str]] = [[] for _ in children]

    async def next_message(child: asyncio.subprocess.Process) -> dict[str, Any]:
        assert child.stdout is not None
        line = await child.stdout.readline()
        if not line:
            raise RuntimeError(f"instance exited early (code {await child.wait()})")
        return dict(json.loads(line))

    async def split() -> None:
        waiting = {asyncio.ensure_future(next_message(c)): i for i, c in enumerate(children)}
        while True:
            done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                i = waiting.pop(task)
                held[i] = task.result()["assigned"]
                waiting[asyncio.ensure_future(next_message(children[i]))] = i
            everything = [p for h in held for p in h]
            if all(held) and len(everything) == partitions == len(set(everything)):
                for task in waiting:
                    task.cancel()
                # wait for them to end: a reader cancelled but not yet run still holds its
                # stream, and the next readline on it would raise
                await asyncio.gather(*waiting, return_exceptions=True)
                return

    async with asyncio.timeout(INSTANCE_START_SECONDS):
        await split()
    database_before = database_cpu_seconds(database)
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"go\n")
        await child.stdin.drain()
    figures = []
    for child in children:
        while "done" not in (message := await next_message(child)):
            pass  # an assignment line after go would be a rebalance: the round says so below
        figures.append(message)
    database_after = database_cpu_seconds(database)  # each instance connected until told
    for child in children:
        assert child.stdin is not None
        child.stdin.write(b"stop\n")
        await child.stdin.drain()
        if await child.wait() != 0:
            raise RuntimeError(f"instance exited with code {child.returncode}")
    if any(f["assignments"] != 1 for f in figures):
        say("  (a rebalance happened inside the timing of this round)")
    return InstanceRound(
        seconds=max(f["done"] for f in figures) - min(f["started"] for f in figures),
        cpu_seconds=[f["cpu_seconds"] for f in figures],
        rss=[[(at, rss) for at, rss in f["rss"]] for f in figures],
        database_cpu_seconds=sum(
            seconds - database_before.get(pid, 0.0) for pid, seconds in database_after.items()
        ),
    )


def _resident_bytes() -> int:
    """This process's resident set size (Linux: /proc/self/statm)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def instance_child(prefix: str, partitions: int, database_url: str, group: str) -> None:
    """One instance of an `instances` round: joins `group`, prints its assignment whenever it
    changes, fetches nothing until "go" on stdin, then prints its figures once caught up."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    topics = Topics(prefix=prefix, partitions=partitions)
    registry = Registry.from_settings(
        bench_registry_settings(bootstrap, topics, database_url, group)
    )
    go = asyncio.Event()
    consumer = registry.loop.consumer
    fetch = consumer.getmany

    async def gated(*args: Any, **kwargs: Any) -> Any:
        await go.wait()
        return await fetch(*args, **kwargs)

    consumer.getmany = gated  # nothing is read before every instance holds its partitions
    await registry.start()
    said = asyncio.create_task(asyncio.to_thread(sys.stdin.readline))
    last: list[str] | None = None
    assignments = 0

    def report_assignment() -> None:
        nonlocal last, assignments
        now = sorted(f"{tp.topic}:{tp.partition}" for tp in consumer.assignment())
        if now != last:
            last = now
            assignments += 1
            print(json.dumps({"assigned": now}), flush=True)

    while not said.done():
        report_assignment()
        await asyncio.sleep(0.02)
    assignments = 0
    samples: list[tuple[float, int]] = []
    started, cpu = time.time(), time.process_time()

    async def sample() -> None:
        while True:
            samples.append((time.time() - started, _resident_bytes()))
            report_assignment()
            await asyncio.sleep(RSS_SECONDS)

    go.set()
    sampler = asyncio.create_task(sample())
    try:
        await registry.wait_until_idle(timeout=3600)
        done = time.time()
        samples.append((done - started, _resident_bytes()))
        figures = {
            "started": started,
            "done": done,
            "cpu_seconds": time.process_time() - cpu,
            "rss": samples,
            "assignments": max(assignments, 1),
        }
        print(json.dumps(figures), flush=True)
        # connected until told to stop: the parent reads the database backends' CPU first
        await asyncio.to_thread(sys.stdin.readline)
    finally:
        sampler.cancel()
        await registry.stop()


async def observability_round(
    bootstrap: str, topics: Topics, database_url: str, on: bool
) -> tuple[float, float]:
    """One registry run in a process of its own, observability on or off: (seconds, CPU
    seconds of the registry's process)."""
    command = [
        sys.executable, "-m", "bench.ingest", "--observability-child", "on" if on else "off",
        "--child-topic-prefix", topics.prefix, "--partitions", str(topics.partitions),
        "--child-database-url", database_url,
    ]  # fmt: skip
    env = {**os.environ, "KAFKA_BOOTSTRAP_SERVERS": bootstrap}
    env.pop("SESSIONS_OTLP_ENDPOINT", None)  # the child installs tracing itself when on
    done = await asyncio.to_thread(
        subprocess.run, command, env=env, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"observability round failed:\n{done.stderr[-2000:]}")
    figures = json.loads(done.stdout.strip().splitlines()[-1])
    return float(figures["seconds"]), float(figures["cpu_seconds"])


async def observability_child(on: bool, prefix: str, partitions: int, database_url: str) -> None:
    """A round of `observability`: on installs an SDK tracer provider (spans kept in memory,
    as `configure_tracing` with an exporter does), keeps the metrics and scrapes them."""
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from session_contracts.tracing import configure_tracing

    exporter = InMemorySpanExporter()
    if on:
        configure_tracing("bench-ingest", exporter=exporter)
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    topics = Topics(prefix=prefix, partitions=partitions)
    seconds, cpu = await timed_registry_run(bootstrap, topics, database_url, metrics=on, scrape=on)
    spans = len(exporter.get_finished_spans())
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu, "spans": spans}))


async def observability(
    bootstrap: str, admin_url: str, partitions: int, events: int, blocks: int
) -> None:
    """The registry with metrics and tracing on against off, ABBA blocks in this run.

    Two ratios per block: of the wall-clock time (the whole pipeline: broker, PostgreSQL and
    the registry, which other work on a shared machine disturbs) and of the registry process's
    CPU time (where metrics and tracing run, and far less disturbed)."""
    topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=partitions)
    await ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap), topics)
    try:
        total = await load(bootstrap, topics, events)
        say(
            f"observability on/off: {total} events in topics of their own, {blocks} ABBA "
            "blocks, each round a registry process into a fresh database"
        )
        ratios: dict[str, list[float]] = {"wall": [], "cpu": []}
        best: dict[bool, float] = {False: math.inf, True: math.inf}
        for block in range(blocks):
            wall: dict[str, list[float]] = {"A": [], "B": []}
            cpu: dict[str, list[float]] = {"A": [], "B": []}
            for side in ORDER:
                url = await fresh_database(admin_url, "observability")
                try:
                    seconds, cpu_seconds = await observability_round(
                        bootstrap, topics, url, side == "B"
                    )
                finally:
                    await drop_database(admin_url, url)
                wall[side].append(seconds)
                cpu[side].append(cpu_seconds)
                best[side == "B"] = min(best[side == "B"], seconds)
            ratios["wall"].append(block_ratio(wall["A"], wall["B"]))
            ratios["cpu"].append(block_ratio(cpu["A"], cpu["B"]))
            say(
                f"  block {block + 1} (off, on, on, off): wall {wall['A'][0]:.2f} "
                f"{wall['B'][0]:.2f} {wall['B'][1]:.2f} {wall['A'][1]:.2f} s "
                f"({ratios['wall'][-1]:.3f}x), registry CPU {cpu['A'][0]:.2f} {cpu['B'][0]:.2f} "
                f"{cpu['B'][1]:.2f} {cpu['A'][1]:.2f} s ({ratios['cpu'][-1]:.3f}x)"
            )
    finally:
        await delete_topics(bootstrap, topics)
    say(
        f"best rounds: off {_rate(total, best[False]):,.0f} events/s, "
        f"on {_rate(total, best[True]):,.0f} events/s"
    )
    for kind, label in (("wall", "wall-clock time"), ("cpu", "registry CPU time")):
        figure = spread(ratios[kind])
        verdict = "OK" if figure.within(OBSERVABILITY_TARGET) else "NOT SHOWN WITHIN TARGET"
        say(
            f"observability on/off, {label}: {figure} -> {verdict} "
            f"(target: 95% CI upper end <= {OBSERVABILITY_TARGET:.2f}x)"
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
        "--instance-blocks",
        type=int,
        default=2,
        help="ABBA blocks of one registry instance against two (0: skip them)",
    )
    parser.add_argument(
        "--observability-events",
        type=int,
        default=200_000,
        help="events of the observability on/off rounds (topics of their own)",
    )
    parser.add_argument(
        "--observability-blocks",
        type=int,
        default=4,
        help="ABBA blocks of the observability on/off comparison (0: skip it)",
    )
    parser.add_argument(
        "--observability-only",
        action="store_true",
        help="Only the observability on/off comparison (no ceiling, naive, registry, replay).",
    )
    parser.add_argument("--observability-child", choices=("on", "off"), help=argparse.SUPPRESS)
    parser.add_argument("--child-topic-prefix", help=argparse.SUPPRESS)
    parser.add_argument("--child-database-url", help=argparse.SUPPRESS)
    parser.add_argument("--instance-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--child-group", help=argparse.SUPPRESS)
    parser.add_argument(
        "--secured",
        action="store_true",
        help="Only load + registry, on the secured cluster (deploy/kafka.sh cluster) and on "
        "the plain broker: the ratio is the cost of security and replication.",
    )
    args = parser.parse_args()
    tune_gc()  # as `session-registry run` and `rebuild` do
    if args.observability_child:
        asyncio.run(
            observability_child(
                args.observability_child == "on",
                args.child_topic_prefix,
                args.partitions,
                args.child_database_url,
            )
        )
        return
    if args.instance_child:
        asyncio.run(
            instance_child(
                args.child_topic_prefix, args.partitions, args.child_database_url, args.child_group
            )
        )
        return
    if args.secured:
        asyncio.run(secured(args.events, args.partitions))
        return
    asyncio.run(
        main(
            0 if args.observability_only else args.events,
            min(args.naive_events, args.events),
            args.partitions,
            args.keep_topics,
            args.observability_events,
            args.observability_blocks,
            args.instance_blocks,
        )
    )


if __name__ == "__main__":  # the guard matters: rebuild workers are spawned processes
    cli()
