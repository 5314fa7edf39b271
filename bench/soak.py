"""Load and burst soak: the admin API under traffic while the registry ingests, then a burst of
terminations by filter, with nothing lost. Its Markdown table is the "Load" part of
docs/reliability.md.

    python -m bench.soak [--population 20000] [--burst 100000] [--workers 2]
                         [--baseline-seconds 30] [--load-seconds 60] [--rate 10000]
                         [--concurrency 16] [--out FILE] [--json FILE]

On the real broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092) under a fresh topic
prefix, and a fresh PostgreSQL database made with the admin URL in SESSIONS_TEST_POSTGRES_URL
(else `deploy/postgres.sh start`); both are removed afterwards. The registry
(`python -m session_registry run`) and the admin API (`uvicorn --workers N --factory
admin_api.app:app_from_env`, 127.0.0.1) run as their own processes, configured from the env.

1. Load: the same request mix (list first page, search, filter + CIDR sorted by name, and
   terminations by id) from `--concurrency` httpx clients with no ingestion (the baseline,
   half before and half after), and while a producer streams the workload at `--rate`
   events/s. Reports
   requests/s, p50/p99 per kind and the loaded/idle p99 ratio, errors, the registry's lag
   over time, its maximum, and the time to drain it after the load stops.
2. Burst: `--burst` sessions over `--burst-tenants` tenants, all terminated by one filter
   command per tenant; every session must end in the read model, get one session.terminated
   and be revoked at its tenant's gateway. Reports the time to each.

Exits 1 if anything was lost: an error answer, a termination not applied, a missing event or
revocation, or lag not drained within `--recover-seconds`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import asdict
from pathlib import Path
from typing import Any

from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from auth_gateway import GatewaySettings, SessionGateway
from bench.ingest import drop_database, fresh_database, say
from bench.revocation import _free_port, service_env
from bench.soak_burst import BurstResult, open_sessions, run_burst
from bench.soak_load import LoadFigures, PhaseResult, merged, run_phase
from bench.soak_report import markdown
from bench.soak_stack import (
    LagProbe,
    delete_run_topics,
    produce,
    producer_child,
    services,
    start_producer,
    wait_ready,
)
from devstack.deploy_scripts import postgres_admin_url
from read_model.database import upgrade_schema
from session_contracts.kafka_admin import ensure_topics
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics
from session_registry.workload import Workload, past_start, records, sessions_for

ADMIN_TENANT = "tenant-0"
LAG_SAMPLE_SECONDS = 0.5


def seed_streams(population: int, burst: int, burst_tenants: int) -> tuple[list[Any], ...]:
    """The listed population (tenant-*) and the burst's sessions (burst-*), as records."""
    listed = Workload(sessions=population, activity=5, seed=7, start=past_start(population))
    doomed = Workload(
        sessions=burst,
        tenants=burst_tenants,
        tenant_prefix="burst-",
        session_types=("browser", "mobile"),
        activity=0,
        terminated_share=0.0,
        seed=9,
        start=past_start(burst),
    )
    return list(records(listed)), list(records(doomed))


def created_ids(stream: list[tuple[bytes, bytes]]) -> dict[str, set[str]]:
    """Per tenant, the sessions of `stream` that are created and never ended in it."""
    alive: dict[str, set[str]] = {}
    for _, value in stream:
        body = json.loads(value)
        ids = alive.setdefault(body["tenant_id"], set())
        if body["type"] == "session.created":
            ids.add(body["session_id"])
    for _, value in stream:
        body = json.loads(value)
        if body["type"] == "session.terminated":
            alive[body["tenant_id"]].discard(body["session_id"])
    return alive


async def sample_lag(probe: LagProbe, samples: list[tuple[float, int, int]]) -> None:
    """Append (seconds since start, records behind, outbox rows) until cancelled."""
    started = time.monotonic()
    while True:
        behind, waiting = await probe.lag()
        samples.append((time.monotonic() - started, behind, waiting))
        await asyncio.sleep(LAG_SAMPLE_SECONDS)


async def loaded_phase(
    args: argparse.Namespace, api: str, token: str, pool: list[str], probe: LagProbe,
    producer: subprocess.Popen[str],
) -> tuple[PhaseResult, int, list[tuple[float, int, int]], float | None]:  # fmt: skip
    """Load and ingestion together, then the drain: (result, ingested, lag, recovery s)."""
    samples: list[tuple[float, int, int]] = []
    sampler = asyncio.create_task(sample_lag(probe, samples))
    assert producer.stdin is not None and producer.stdout is not None
    producer.stdin.write("go\n")
    producer.stdin.flush()
    loaded = await run_phase(
        api, token, pool, seconds=args.load_seconds, max_requests=args.max_requests,
        concurrency=args.concurrency, seed=2,
    )  # fmt: skip
    line = await asyncio.to_thread(producer.stdout.readline)
    producer.wait()
    ingested = int(json.loads(line)["sent"]) if line.strip() else 0
    stopped = time.monotonic()
    recovery: float | None = None
    try:
        await probe.wait_caught_up(args.recover_seconds)
        recovery = time.monotonic() - stopped
    except SystemExit as exc:
        say(str(exc))
    sampler.cancel()
    return loaded, ingested, samples, recovery


async def load_part(
    args: argparse.Namespace, api: str, token: str, pools: tuple[list[str], ...],
    probe: LagProbe, producer: subprocess.Popen[str],
) -> LoadFigures:  # fmt: skip
    """Idle, loaded, idle again: the baseline brackets the load, so a change in the machine's
    background load during the run shows as a difference between its two halves."""

    async def idle(pool: list[str], seed: int) -> PhaseResult:
        phase = await run_phase(
            api, token, pool, seconds=args.baseline_seconds / 2,
            max_requests=args.max_requests, concurrency=args.concurrency, seed=seed,
        )  # fmt: skip
        say(f"idle: {phase.requests} requests, {phase.rate:.0f}/s, {phase.errors} errors")
        await probe.wait_caught_up(args.recover_seconds)
        return phase

    await run_phase(
        api, token, [], seconds=min(3.0, args.baseline_seconds),
        max_requests=args.max_requests, concurrency=args.concurrency, seed=0,
    )  # fmt: skip
    before = await idle(pools[0], 1)
    loaded, ingested, lag, recovery = await loaded_phase(
        args, api, token, pools[1], probe, producer
    )
    say(f"load: {loaded.requests} requests, {loaded.rate:.0f}/s, {loaded.errors} errors")
    say(f"ingested {ingested} events; lag drained {recovery} s after the load stopped")
    after = await idle(pools[2], 3)
    figures = LoadFigures(merged(before, after), loaded, ingested, lag, recovery)
    figures.idle_rates = before.rate, after.rate
    return figures


async def soak(args: argparse.Namespace) -> tuple[LoadFigures, BurstResult]:
    """The whole run, from fresh topics and database to removing them."""
    bootstrap = args.bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    admin_url = postgres_admin_url()
    args.postgres = admin_url.rpartition("@")[2].partition("/")[0]
    topics = Topics(prefix=f"soak{uuid.uuid4().hex[:8]}.", partitions=args.partitions)
    await ensure_topics(KafkaSettings(kafka_bootstrap_servers=bootstrap), topics)
    database_url = await fresh_database(admin_url, "soak")
    args.topic_prefix, args.database = topics.prefix, database_url.rpartition("/")[2]
    try:
        return await _soak(args, bootstrap, topics, database_url)
    finally:
        await drop_database(admin_url, database_url)
        await delete_run_topics(bootstrap, topics.prefix)  # whoever created them


async def _soak(
    args: argparse.Namespace, bootstrap: str, topics: Topics, database_url: str
) -> tuple[LoadFigures, BurstResult]:
    await upgrade_schema(database_url)
    secret = secrets.token_urlsafe(48)
    group = f"soak-registry-{uuid.uuid4().hex[:8]}"
    env = service_env(bootstrap, topics, database_url, secret, group)
    settings = AdminApiSettings(_env_file=None, environment="development", jwt_secret=secret)
    listed, doomed = seed_streams(args.population, args.burst, args.burst_tenants)
    alive = sorted(created_ids(listed).get(ADMIN_TENANT, set()))
    # each phase terminates sessions of its own: a session is ended once
    pools = alive[0::3], alive[1::3], alive[2::3]
    expected = created_ids(doomed)
    tokens = {t: issue_dev_token(settings, "soak-admin", t) for t in sorted(expected)}
    token = issue_dev_token(settings, "soak-admin", ADMIN_TENANT, ttl=86400)
    say(f"broker {bootstrap}, topics {topics.prefix}*, database {database_url.rpartition('/')[2]}")
    gateways = {
        tenant: SessionGateway.from_settings(
            GatewaySettings(
                KAFKA_BOOTSTRAP_SERVERS=bootstrap,
                topic_prefix=topics.prefix,
                gateway_tenant_id=tenant,
            )
        )
        for tenant in expected
    }
    probe = LagProbe(bootstrap, database_url, group, topics)
    stream_spec = {"sessions": sessions_for(int(args.rate * args.load_seconds * 1.1)), "seed": 8}
    producer = start_producer(env, stream_spec, args.rate, args.load_seconds)
    with services(env, _free_port(), args.workers, args.logs) as stack:
        try:
            await wait_ready(stack, 90)
            await probe.start()
            for gateway in gateways.values():
                await gateway.start()
            started = time.monotonic()
            seeded = await produce(bootstrap, topics.events, listed + doomed)
            await probe.wait_caught_up(args.recover_seconds * 2)
            say(f"seeded {seeded} events in {time.monotonic() - started:.1f} s")
            assert producer.stdout is not None
            if (await asyncio.to_thread(producer.stdout.readline)).strip() != "ready":
                raise SystemExit("the ingestion producer did not start")
            figures = await load_part(args, stack.api, token, pools, probe, producer)
            figures.not_applied = await open_sessions(
                database_url,
                {ADMIN_TENANT},
                figures.idle.terminated_ids + figures.loaded.terminated_ids,
            )
            async with asyncio.timeout(120):
                for gateway in gateways.values():
                    await gateway.wait_ready()
            burst = await run_burst(
                stack.api, tokens, expected, gateways, bootstrap=bootstrap,
                events_topic=topics.events, database_url=database_url, within=args.burst_timeout,
            )  # fmt: skip
            say(f"burst: {burst}")
        finally:
            if producer.poll() is None:
                producer.kill()
            for gateway in gateways.values():
                await gateway.stop()
            await probe.stop()
    return figures, burst


def cli() -> None:
    """Parse arguments, run, print the table; exit 1 if anything was lost."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--population", type=int, default=20_000, help="listed sessions")
    parser.add_argument("--burst", type=int, default=100_000, help="sessions terminated at once")
    parser.add_argument("--burst-tenants", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--concurrency", type=int, default=16, help="requests in flight")
    parser.add_argument("--baseline-seconds", type=float, default=30.0)
    parser.add_argument("--load-seconds", type=float, default=60.0)
    parser.add_argument("--rate", type=float, default=10_000.0, help="events/s ingested under load")
    parser.add_argument("--max-requests", type=int, default=1_000_000, help="per phase")
    parser.add_argument("--recover-seconds", type=float, default=180.0)
    parser.add_argument("--burst-timeout", type=float, default=600.0)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--out", type=Path, help="also write the Markdown table here")
    parser.add_argument("--json", type=Path, help="write the figures as JSON here")
    parser.add_argument("--producer-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.producer_child:
        bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
        events = Topics(prefix=os.environ.get("SESSIONS_TOPIC_PREFIX", "")).events
        producer_child(bootstrap, events, args.producer_child, args.rate, args.load_seconds)
        return
    args.logs = Path(tempfile.mkdtemp(prefix="bench-soak-"))
    say(f"logs in {args.logs} (removed when nothing was lost)")
    load, burst = asyncio.run(soak(args))
    table = markdown(args, load, burst)
    print(table)
    if args.out:
        args.out.write_text(table)
    lost = load.lost + burst.lost
    if args.json:
        args.json.write_text(json.dumps(_figures(args, load, burst, lost), indent=2))
    for problem in lost:
        print(f"LOST: {problem}", file=sys.stderr)
    if lost:
        print(f"logs of the registry and the admin API kept in {args.logs}", file=sys.stderr)
        sys.exit(1)
    shutil.rmtree(args.logs, ignore_errors=True)


def _figures(
    args: argparse.Namespace, load: LoadFigures, burst: BurstResult, lost: list[str]
) -> dict[str, Any]:
    phases = {}
    for name, phase in (("idle", load.idle), ("loaded", load.loaded)):
        phases[name] = {
            "requests": phase.requests,
            "errors": phase.errors,
            "terminations": len(phase.terminated_ids),
            "per_kind": {k: {"count": r.count, "errors": r.errors} for k, r in phase.kinds.items()},
        }
    return {
        "run": {"topic_prefix": args.topic_prefix, "database": args.database},
        "load": {
            **phases,
            "ingested": load.ingested,
            "max_lag": load.max_lag[1],
            "lag_drained": load.recovery_seconds is not None,
            "terminations_not_applied": load.not_applied,
        },
        "burst": asdict(burst),
        "lost": lost,
    }


if __name__ == "__main__":
    cli()
