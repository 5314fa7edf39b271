"""Revocation latency: from the admin API's 202 to the first request the gateway rejects.

    python -m bench.revocation [--terminations 250] [--fetch-wait-ms 100] [--database postgres]
        [--walks 400000]

On the real broker (KAFKA_BOOTSTRAP_SERVERS, default 127.0.0.1:9092) under a fresh topic
prefix: the registry (`python -m session_registry run`) and the
admin API (uvicorn, `admin_api.app:app_from_env`) run as their own processes on a fresh
SQLite read model, as in the devstack; a gateway runs in this process. Sessions are created
through the event path, then terminated one at a time (`POST /api/v1/sessions/terminations`);
after each 202 the gateway is asked (ASGI call, no network) every millisecond until it
answers 401. Prints p50, p99 and max against the target p99 <= 20 ms, and each hop's
share (POST -> 202; 202 -> revocation record produced, the registry; record -> rejected, the
gateway: told apart by the revocation records' CreateTime, read by a consumer of the bench's
own). Baseline of the same run: the gateway's share alone (a revocation record produced
straight onto the topic -> first rejected request).

`--walks N`: a second tenant of N sessions whose admin meanwhile sends terminations by a text
that matches nothing (`q=~`: the registry's resolution reads its whole listed set, as the
admin API's count does), back to back, with the admin API's budgets off. The first half of the
terminations is measured without them, the second half with them: the ratio says how much one
tenant's walks delay another tenant's revocations.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from starlette.types import Message, Receive, Scope, Send

from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from auth_gateway import GatewaySettings, SessionGateway
from bench.ingest import delete_topics
from devstack.deploy_scripts import postgres_admin_url
from devstack.scratch_databases import create_database, drop_database
from read_model.database import upgrade_schema
from session_contracts.codec import encode
from session_contracts.handles import record_key, session_handle
from session_contracts.http_limits import HEAD_LIMITED_HTTP
from session_contracts.kafka_admin import ensure_topics
from session_contracts.kafka_clients import new_consumer, new_producer
from session_contracts.models import (
    SessionCreated,
    SessionPolicy,
    SessionRevoked,
    SessionType,
    TerminationReason,
)
from session_contracts.publisher import SessionEventPublisher
from session_contracts.settings import KafkaSettings
from session_contracts.topics import Topics

TENANT = "bench"
WALKER = "bench-walker"
"""The tenant whose admin sends walks (`--walks`)."""
WALK = {"filter": {"q": "~"}}
"""A termination no index answers and nothing matches: its count and its resolution read the
walker's whole listed set."""
TARGET_P99_MS = 20.0
GIVE_UP_SECONDS = 10.0
POLL_SECONDS = 0.001
"""Between two probe requests. Spinning with sleep(0) instead would take a whole core of the
two this machine has from the registry and the broker, and measure that contention."""


async def ok_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The protected service: anything the gateway admits gets 200."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


class GatewayProbe:
    """Asks the gateway about one session the way a request would, without a network."""

    def __init__(self, gateway: SessionGateway) -> None:
        self._app = gateway.wrap(ok_app, manage_lifespan=False)

    async def status(self, session_id: str) -> int:
        """The HTTP status the gateway gives a mobile request of this session."""
        statuses: list[int] = []

        async def receive() -> Message:
            return {"type": "http.request", "body": b"", "more_body": False}

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                statuses.append(message["status"])

        scope = {
            "type": "http",
            "method": "GET",
            "path": "/api/data",
            "client": ("127.0.0.1", 1),
            "headers": [(b"x-session-id", session_id.encode())],
        }
        await self._app(scope, receive, send)
        return statuses[0]


class RevocationTimes:
    """When each revocation record was produced (its CreateTime, set by the registry's relay):
    read by a consumer of its own beside the gateway, so the hops can be told apart."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self._consumer = new_consumer(
            kafka, kafka.topics.revocations, auto_offset_reset="latest", fetch_max_wait_ms=50
        )
        self._produced: dict[bytes, float] = {}
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self._consumer.start()
        self._task = asyncio.create_task(self._follow())

    async def _follow(self) -> None:
        async for record in self._consumer:
            if record.key is not None and record.value is not None:
                self._produced.setdefault(record.key, record.timestamp / 1000)
                arrived, self._arrived = self._arrived, asyncio.Event()
                arrived.set()

    async def produced(self, key: bytes, within: float = 5.0) -> float | None:
        """Wall-clock seconds at which the revocation of `key` was produced (None: not seen)."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while key not in self._produced:
                    await self._arrived.wait()
        return self._produced.get(key)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._consumer.stop()


@dataclass
class Hops:
    """Each termination's time split at the two hand-overs, in seconds."""

    post: list[float] = field(default_factory=list)
    """POST -> 202 (the admin API: checks, the command produced with acks=all)."""
    registry: list[float] = field(default_factory=list)
    """202 -> revocation produced (the registry: fetch, apply in one transaction, relay)."""
    gateway: list[float] = field(default_factory=list)
    """revocation produced -> first rejected request (the gateway's fetch and apply)."""
    whole: list[float] = field(default_factory=list)
    """202 -> first rejected request, of the same terminations."""

    def slowest(self, count: int) -> list[str]:
        """The `count` slowest terminations (202 -> rejected), each split into its hops."""
        ranked = sorted(range(len(self.whole)), key=self.whole.__getitem__, reverse=True)
        return [
            f"{self.whole[i] * 1000:.1f} ms = registry {self.registry[i] * 1000:.1f} + gateway "
            f"{self.gateway[i] * 1000:.1f} (POST before it {self.post[i] * 1000:.1f})"
            for i in ranked[:count]
        ]


@dataclass(frozen=True)
class Profile:
    """Where a run's services connect, and as whom: the plain broker (one connection for all)
    or the secured cluster (each service its own principal, on a topic prefix of its own)."""

    name: str
    topics: Topics
    connections: dict[str, KafkaSettings]
    group: str
    owner: KafkaSettings  # may delete the run's topics (the secured cluster's admin)

    def kafka(self, service: str) -> KafkaSettings:
        return self.connections.get(service) or self.connections["*"]

    @classmethod
    def plain(cls, bootstrap: str) -> Profile:
        topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=6)
        kafka = KafkaSettings(kafka_bootstrap_servers=bootstrap, topic_prefix=topics.prefix)
        return cls("plain", topics, {"*": kafka}, f"bench-registry-{uuid.uuid4().hex[:8]}", kafka)

    @classmethod
    def secured(cls) -> Profile:
        from devstack.secured_cluster import SecuredCluster

        cluster = SecuredCluster.started()
        topics = Topics(prefix=f"bench{uuid.uuid4().hex[:8]}.", partitions=6)
        cluster.environment(topics.prefix)
        users = ("registry", "admin-api", "gateway")
        connections = {user: cluster.settings(user, topics.prefix) for user in users}
        group = f"{topics.prefix}session-registry"
        return cls("secured", topics, connections, group, cluster.settings("admin", topics.prefix))


def kafka_env(kafka: KafkaSettings) -> dict[str, str]:
    """The environment variables a child process reads these Kafka settings from."""
    env = {"KAFKA_BOOTSTRAP_SERVERS": kafka.kafka_bootstrap_servers}
    fields = {
        "SESSIONS_KAFKA_SECURITY_PROTOCOL": kafka.kafka_security_protocol,
        "SESSIONS_KAFKA_SASL_MECHANISM": kafka.kafka_sasl_mechanism,
        "SESSIONS_KAFKA_SASL_USERNAME": kafka.kafka_sasl_username,
        "SESSIONS_KAFKA_SASL_PASSWORD_FILE": kafka.kafka_sasl_password_file,
        "SESSIONS_KAFKA_SSL_CAFILE": kafka.kafka_ssl_cafile,
    }
    env.update({k: str(v) for k, v in fields.items() if v is not None})
    return env


@contextmanager
def services(envs: dict[str, dict[str, str]], admin_port: int, logs: Path) -> Iterator[None]:
    """The registry and the admin API as child processes, stopped on exit."""
    logs.mkdir(parents=True, exist_ok=True)
    commands = {
        # the registry's own command, as deployed (its GC tuning included: a full collection
        # of the start-up heap took 40-50 ms here and was the run's slowest termination)
        "registry": [sys.executable, "-m", "session_registry", "run"],
        "admin-api": [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "admin_api.app:app_from_env",
            "--host",
            "127.0.0.1",
            "--port",
            str(admin_port),
            "--log-level",
            "warning",
            "--no-proxy-headers",
            "--http",  # as deployed: h11 with the request head bounded
            HEAD_LIMITED_HTTP,
        ],
    }
    children = []
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("ab")
            children.append(subprocess.Popen(command, env=envs[name], stdout=log, stderr=log))
        yield
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(timeout=15)
            except subprocess.TimeoutExpired:
                child.kill()


def service_env(
    bootstrap: str | KafkaSettings,
    topics: Topics,
    database_url: str,
    jwt_secret: str,
    group: str,
) -> dict[str, str]:
    """The environment the registry and the admin API processes of a bench run read."""
    kafka = (
        bootstrap
        if isinstance(bootstrap, KafkaSettings)
        else KafkaSettings(kafka_bootstrap_servers=bootstrap)
    )
    return {
        **os.environ,
        **kafka_env(kafka),
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_TOPIC_PARTITIONS": str(topics.partitions),
        "SESSIONS_DATABASE_URL": database_url,
        "SESSIONS_ENVIRONMENT": "development",
        # the soak reads searches of one tenant back to back for minutes, which the search
        # budget exists to refuse; it measures latency under load, not that bound
        "SESSIONS_SEARCH_SECONDS_PER_MINUTE": "0",
        "SESSIONS_JWT_SECRET": jwt_secret,
        "SESSIONS_CONSUMER_GROUP": group,
        "SESSIONS_REGISTRY_HTTP_PORT": "0",  # any free port (logged)
    }


def created(credential: str, tenant: str = TENANT) -> SessionCreated:
    return SessionCreated(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC),
        tenant_id=tenant,
        session_id=session_handle(tenant, credential),
        user_id=f"user-{credential[-4:]}",
        user_name=f"Bench User {credential[-4:]}",
        session_type=SessionType.mobile,
        ip_address="10.0.0.1",
        policy=SessionPolicy(max_session_seconds=86400, idle_timeout_seconds=3600),
    )


async def wait_for(what: str, check: Callable[[], Awaitable[bool]], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            if await check():
                return
        except httpx.HTTPError:
            pass
        await asyncio.sleep(0.1)
    raise SystemExit(f"{what} not reached within {within:.0f} s")


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]


async def run(
    count: int,
    fetch_wait_ms: int,
    pause: float,
    profile: Profile,
    database: str = "sqlite",
    walks: int = 0,
) -> Figures:
    if profile.name == "plain":
        await ensure_topics(profile.kafka("admin-api"))
    workdir = Path(tempfile.mkdtemp(prefix="bench-revocation-"))
    admin_url = postgres_admin_url() if database == "postgres" else None
    if admin_url is None:
        database_url = f"sqlite+aiosqlite:///{workdir / 'sessions.db'}"
    else:
        database_url = await create_database(admin_url, f"bench_revocation_{uuid.uuid4().hex[:8]}")
    try:
        await upgrade_schema(database_url)
        return await _run_on(count, fetch_wait_ms, pause, profile, workdir, database_url, walks)
    finally:
        if admin_url is not None:
            await drop_database(admin_url, database_url.rpartition("/")[2])
        await delete_topics(profile.owner, profile.topics)  # a run's five topics, not left behind


async def _run_on(
    count: int,
    fetch_wait_ms: int,
    pause: float,
    profile: Profile,
    workdir: Path,
    database_url: str,
    walks: int = 0,
) -> Figures:
    topics = profile.topics
    secret = secrets.token_urlsafe(48)
    admin_port = _free_port()
    envs = {
        name: service_env(profile.kafka(name), topics, database_url, secret, profile.group)
        for name in ("registry", "admin-api")
    }
    if profile.name != "plain":  # topics pre-created by the platform, as ACLs expect
        envs["registry"]["SESSIONS_CREATE_TOPICS"] = "false"
    if walks:  # the walker's terminations are what the budget refuses; here they must go on
        envs["admin-api"]["SESSIONS_FILTER_TERMINATION_SECONDS_PER_MINUTE"] = "0"
    walker_token = issue_dev_token(
        AdminApiSettings(_env_file=None, environment="development", jwt_secret=secret),
        sub="bench-walker-admin",
        tenant=WALKER,
        grants=["edit_user_sessions"],
    )
    token = issue_dev_token(
        AdminApiSettings(_env_file=None, environment="development", jwt_secret=secret),
        sub="bench-admin",
        tenant=TENANT,
        grants=["edit_user_sessions"],
    )
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            **profile.kafka("gateway").model_dump(exclude={"kafka_client_id"}),
            gateway_tenant_id=TENANT,
            gateway_fetch_max_wait_ms=fetch_wait_ms,
        )
    )
    probe = GatewayProbe(gateway)
    session_ids = [f"bench-{n:05d}-{secrets.token_hex(8)}" for n in range(count)]
    base = f"http://127.0.0.1:{admin_port}"
    auth = {"Authorization": f"Bearer {token}"}
    kafka = profile.kafka("gateway").kafka_bootstrap_servers
    backend = database_url.partition(":")[0]
    print(f"{profile.name}: brokers {kafka}, topics {topics.prefix}*, {backend}, logs {workdir}")
    times = RevocationTimes(profile.kafka("gateway"))
    with services(envs, admin_port, workdir / "logs"):
        await gateway.start()
        await times.start()
        async with httpx.AsyncClient(base_url=base, headers=auth, timeout=30) as admin:

            async def admin_ready() -> bool:
                answer = await admin.get("/readyz")  # "degraded": Kafka not connected yet
                return answer.status_code == 200 and answer.json()["status"] == "ready"

            await wait_for("admin API ready", admin_ready, 60)
            async with asyncio.timeout(60):
                await gateway.wait_ready()
            async with SessionEventPublisher(profile.kafka("gateway")) as publisher:
                await publisher.publish_many([created(s) for s in session_ids])
                for start in range(0, walks, 10_000):
                    await publisher.publish_many(
                        [
                            created(f"walk-{n}", WALKER)
                            for n in range(start, min(walks, start + 10_000))
                        ]
                    )

            async def all_listed() -> bool:
                page = await admin.get("/api/v1/sessions", params={"limit": 1})
                return bool(page.status_code == 200 and page.json()["total"] == count)

            await wait_for(f"{count} sessions listed", all_listed, 120)
            walker = {"Authorization": f"Bearer {walker_token}"}
            if walks:

                async def walker_listed() -> bool:
                    page = await admin.get("/api/v1/sessions", params={"limit": 1}, headers=walker)
                    return bool(page.status_code == 200 and page.json()["total"] == walks)

                await wait_for(f"{walks} sessions of {WALKER} listed", walker_listed, 1800)
            half = len(session_ids) // 2 if walks else len(session_ids)
            latencies, hops, missed = await _terminate_each(
                admin, probe, times, session_ids[:half], pause
            )
            if walks:
                walking = Walking(admin, walker)
                async with walking.going():
                    walked = await _terminate_each(admin, probe, times, session_ids[half:], pause)
                print("without walks:")
                _report(latencies, hops, missed, fetch_wait_ms)
                print(f"with {WALKER}'s walks of {walks} sessions ({walking.summary()}):")
                _report(*walked, fetch_wait_ms)
                _report_walks(latencies, walked[0])
                latencies = latencies + walked[0]
        # only the registry's principal may write revocations
        direct = await _direct_records(profile.kafka("registry"), probe, min(count, 100), pause)
        await times.stop()
    await gateway.stop()
    if not walks:
        _report(latencies, hops, missed, fetch_wait_ms)
    _report_direct(direct)
    return Figures(latencies, direct)


@dataclass(frozen=True)
class Figures:
    latencies: list[float]
    direct: list[float]

    def at(self, fraction: float) -> tuple[float, float]:
        """(202 -> rejected, record -> rejected) at this percentile, in ms."""
        return (
            percentile(self.latencies, fraction) * 1000 if self.latencies else float("inf"),
            percentile(self.direct, fraction) * 1000 if self.direct else float("inf"),
        )


async def compare(count: int, fetch_wait_ms: int, pause: float, database: str) -> None:
    """The same run on the plain broker and on the secured cluster; the ratios."""
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    plain = await run(count, fetch_wait_ms, pause, Profile.plain(bootstrap), database)
    secured_profile = await asyncio.to_thread(Profile.secured)
    secured = await run(count, fetch_wait_ms, pause, secured_profile, database)
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        (p_term, p_direct), (s_term, s_direct) = plain.at(fraction), secured.at(fraction)
        print(
            f"secured/plain {label}: 202 -> rejected {s_term:.1f} / {p_term:.1f} ms = "
            f"{s_term / p_term:.2f}x; record -> rejected {s_direct:.1f} / {p_direct:.1f} ms "
            f"= {s_direct / p_direct:.2f}x"
        )


async def _direct_records(
    kafka: KafkaSettings, probe: GatewayProbe, count: int, pause: float
) -> list[float]:
    """The gateway's share: produce a revocation record (acks=all) -> first rejection."""
    topics = kafka.topics
    producer = new_producer(kafka, linger_ms=0)
    await producer.start()
    latencies = []
    try:
        for n in range(count):
            session_id = f"direct-{n}-{secrets.token_hex(8)}"  # the credential presented
            handle = session_handle(TENANT, session_id)
            now = datetime.now(UTC)
            record = SessionRevoked(
                tenant_id=TENANT,
                session_id=handle,
                session_type=SessionType.mobile,
                revoked_at=now,
                reason=TerminationReason.admin,
                valid_until=now + timedelta(hours=1),
            )
            sent = time.perf_counter()
            await producer.send(topics.revocations, encode(record), key=record_key(TENANT, handle))
            while await probe.status(session_id) != 401:
                if time.perf_counter() - sent > GIVE_UP_SECONDS:
                    break
                await asyncio.sleep(POLL_SECONDS)
            else:
                latencies.append(time.perf_counter() - sent)
            await asyncio.sleep(pause)
    finally:
        await producer.stop()
    return latencies


def _report_direct(latencies: list[float]) -> None:
    ms = [x * 1000 for x in latencies]
    if ms:
        print(
            f"baseline, gateway share (record produced -> rejected): p50 "
            f"{percentile(ms, 0.5):.1f} ms, p99 {percentile(ms, 0.99):.1f} ms, max {max(ms):.1f} ms"
        )


async def _terminate_each(
    admin: httpx.AsyncClient,
    probe: GatewayProbe,
    times: RevocationTimes,
    session_ids: list[str],
    pause: float,
) -> tuple[list[float], Hops, int]:
    latencies: list[float] = []
    hops = Hops()
    missed = 0
    for session_id in session_ids:
        assert await probe.status(session_id) == 200, "admitted before termination"
        handle = session_handle(TENANT, session_id)
        sent = time.perf_counter()
        response = await admin.post("/api/v1/sessions/terminations", json={"session_ids": [handle]})
        accepted = time.perf_counter()
        accepted_wall = time.time()
        if response.status_code != 202:
            raise SystemExit(f"termination refused: {response.status_code} {response.text}")
        while await probe.status(session_id) != 401:
            if time.perf_counter() - accepted > GIVE_UP_SECONDS:
                missed += 1
                break
            await asyncio.sleep(POLL_SECONDS)
        else:
            refused_wall = time.time()
            latencies.append(time.perf_counter() - accepted)
            produced = await times.produced(record_key(TENANT, handle))
            if produced is not None:  # (a record's CreateTime has millisecond resolution)
                hops.post.append(accepted - sent)
                hops.whole.append(latencies[-1])
                hops.registry.append(max(0.0, produced - accepted_wall))
                hops.gateway.append(max(0.0, refused_wall - produced))
        await asyncio.sleep(pause)
    return latencies, hops, missed


def _report(latencies: list[float], hops: Hops, missed: int, fetch_wait_ms: int) -> None:
    ms = [x * 1000 for x in latencies]
    p99 = percentile(ms, 0.99) if ms else float("inf")
    print(f"{len(ms)} terminations, {missed} not enforced within {GIVE_UP_SECONDS:.0f} s")
    print(f"gateway consumer fetch_max_wait_ms={fetch_wait_ms}")
    if ms:
        print(
            f"202 -> first rejected request: p50 {percentile(ms, 0.5):.1f} ms, "
            f"p99 {p99:.1f} ms, max {max(ms):.1f} ms, mean {statistics.fmean(ms):.1f} ms"
        )
    if hops.post:
        # the shares of the mean POST -> rejected time (every hop measured on the same runs)
        parts = {
            "POST -> 202 (admin API)": hops.post,
            "202 -> revocation produced (registry)": hops.registry,
            "revocation produced -> rejected (gateway)": hops.gateway,
        }
        whole = sum(statistics.fmean(v) for v in parts.values())
        for name, values in parts.items():
            values_ms = [x * 1000 for x in values]
            print(
                f"hop {name}: p50 {percentile(values_ms, 0.5):.1f} ms, "
                f"p99 {percentile(values_ms, 0.99):.1f} ms, "
                f"share of the mean {statistics.fmean(values) / whole:.0%}"
            )
        # the tail: which hop the slowest terminations lost their time in
        for line in hops.slowest(3):
            print(f"slowest: {line}")
    verdict = "OK" if p99 <= TARGET_P99_MS and not missed else "OVER TARGET"
    print(f"target 202 -> rejected p99 <= {TARGET_P99_MS:.0f} ms: {verdict}")


class Walking:
    """The walker's admin sending walks back to back (each POST waits for its count)."""

    def __init__(self, admin: httpx.AsyncClient, auth: dict[str, str]) -> None:
        self._admin = admin
        self._auth = auth
        self.posts: list[float] = []
        self.refused: dict[int, int] = {}

    @contextlib.asynccontextmanager
    async def going(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self._walk())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _walk(self) -> None:
        while True:
            started = time.perf_counter()
            answer = await self._admin.post(
                "/api/v1/sessions/terminations", json=WALK, headers=self._auth
            )
            if answer.status_code == 202:
                self.posts.append(time.perf_counter() - started)
            else:
                self.refused[answer.status_code] = self.refused.get(answer.status_code, 0) + 1

    def summary(self) -> str:
        median = statistics.median(self.posts) * 1000 if self.posts else float("nan")
        refused = f", refused {self.refused}" if self.refused else ""
        return f"{len(self.posts)} accepted, each POST (its count) {median:.0f} ms median{refused}"


def _report_walks(without: list[float], walked: list[float]) -> None:
    for label, fraction in (("p50", 0.5), ("p99", 0.99)):
        before, during = percentile(without, fraction), percentile(walked, fraction)
        print(
            f"with walks / without, 202 -> rejected {label}: {during * 1000:.1f} / "
            f"{before * 1000:.1f} ms = {during / before:.2f}x"
        )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--terminations", type=int, default=250)
    parser.add_argument("--fetch-wait-ms", type=int, default=100)
    parser.add_argument("--pause", type=float, default=0.02, help="seconds between terminations")
    parser.add_argument(
        "--secured",
        action="store_true",
        help="Run on the plain broker, then on the secured cluster (deploy/kafka.sh cluster, "
        "each service its own principal); print the ratios.",
    )
    parser.add_argument(
        "--walks",
        type=int,
        default=0,
        help="sessions of a second tenant whose admin sends terminations by a text matching "
        "nothing during the second half of the run; prints the ratio to the first half",
    )
    parser.add_argument(
        "--database",
        choices=("sqlite", "postgres"),
        default="sqlite",
        help="the read model the registry and the admin API share: a fresh SQLite file (the "
        "devstack's default) or a scratch database on the PostgreSQL of deploy/postgres.sh "
        "(SESSIONS_TEST_POSTGRES_URL), dropped after the run",
    )
    args = parser.parse_args()
    if args.secured:
        asyncio.run(compare(args.terminations, args.fetch_wait_ms, args.pause, args.database))
        return
    bootstrap = os.environ.get("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:9092")
    profile = Profile.plain(bootstrap)
    asyncio.run(
        run(args.terminations, args.fetch_wait_ms, args.pause, profile, args.database, args.walks)
    )


if __name__ == "__main__":
    cli()
