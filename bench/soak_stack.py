"""What `bench.soak` runs against: the registry and the admin API as real processes, a paced
producer of the workload, and a probe of the registry's lag.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from devstack.cli import wait_http_ok
from read_model.database import make_engine
from session_contracts.http_limits import HEAD_LIMITED_HTTP
from session_contracts.topics import Topics
from session_registry.adapters.outbox import outbox_size
from session_registry.adapters.partitions import topic_partitions
from session_registry.adapters.positions import load_positions
from session_registry.workload import Workload, past_start, records


@dataclass
class Stack:
    """Child processes of the run, with where their output goes."""

    children: list[subprocess.Popen[bytes]]
    api: str


@contextmanager
def services(env: dict[str, str], port: int, workers: int, logs: Path) -> Iterator[Stack]:
    """`session-registry run` and `uvicorn --workers N admin_api.app:app_from_env --factory`."""
    logs.mkdir(parents=True, exist_ok=True)
    commands = {
        "registry": [sys.executable, "-m", "session_registry", "run"],
        "admin-api": [
            sys.executable, "-m", "uvicorn", "--factory", "admin_api.app:app_from_env",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers),
            "--log-level", "warning", "--no-access-log", "--no-proxy-headers",
            "--http", HEAD_LIMITED_HTTP,  # as deployed
        ],
    }  # fmt: skip
    stack = Stack([], f"http://127.0.0.1:{port}")
    try:
        for name, command in commands.items():
            log = (logs / f"{name}.log").open("ab")
            stack.children.append(subprocess.Popen(command, env=env, stdout=log, stderr=log))
        yield stack
    finally:
        for child in stack.children:
            child.terminate()
        for child in stack.children:
            try:
                child.wait(timeout=30)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()


async def wait_ready(stack: Stack, within: float) -> None:
    """Until the admin API answers /readyz with 200 and "ready" (database and broker reachable;
    "degraded" is 200 too, while the producer still connects)."""

    def exited() -> str | None:
        return next(
            (f"{c.args!r} (exit {c.returncode})" for c in stack.children if c.poll() is not None),
            None,
        )

    try:
        await wait_http_ok(f"{stack.api}/readyz", "the admin API", exited, within)
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    async with httpx.AsyncClient(timeout=10) as client, asyncio.timeout(within):
        while True:
            if (await client.get(f"{stack.api}/readyz")).json()["status"] == "ready":
                return
            await asyncio.sleep(0.1)


async def delete_run_topics(bootstrap: str, prefix: str) -> None:
    """Remove every topic under the run's own prefix (whichever component created it)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        names = [name for name in await admin.list_topics() if name.startswith(prefix)]
        if names:
            await admin.delete_topics(names)
    finally:
        await admin.close()


class LagProbe:
    """Records of the registry's input topics not yet applied to its read model, and the outbox."""

    def __init__(self, bootstrap: str, database_url: str, group: str, topics: Topics) -> None:
        self._engine = make_engine(database_url)
        self._kafka = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None)
        self._group = group
        self._names = [topics.events, topics.commands]
        self._partitions: list[TopicPartition] = []

    async def start(self) -> None:
        await self._kafka.start()
        for name in self._names:
            self._partitions.extend(await topic_partitions(self._kafka, name))

    async def stop(self) -> None:
        await self._kafka.stop()
        await self._engine.dispose()

    async def lag(self) -> tuple[int, int]:
        """(records behind the end offsets, rows waiting in the outbox)."""
        ends = await self._kafka.end_offsets(self._partitions)
        async with self._engine.connect() as conn:
            stored = await load_positions(conn, self._group, self._names)
            waiting = await outbox_size(conn)
        behind = sum(
            max(0, end - stored.get((tp.topic, tp.partition), 0)) for tp, end in ends.items()
        )
        return behind, waiting

    async def wait_caught_up(self, within: float) -> float:
        """Seconds until nothing is behind and the outbox is empty; SystemExit past `within`."""
        started = time.monotonic()
        while (time.monotonic() - started) < within:
            if await self.lag() == (0, 0):
                return time.monotonic() - started
            await asyncio.sleep(0.2)
        raise SystemExit(f"the registry did not catch up within {within:.0f} s")


async def produce(
    bootstrap: str,
    topic: str,
    stream: list[tuple[bytes, bytes]],
    rate: float = 0,
    seconds: float = float("inf"),
) -> int:
    """Send `stream` at `rate` records/s (0: at once) for at most `seconds`; return the count."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap, acks="all", enable_idempotence=True, linger_ms=10,
        max_batch_size=512 * 1024,
    )  # fmt: skip
    await producer.start()
    sent = 0
    pending = []
    started = time.monotonic()
    try:
        for key, value in stream:
            ahead = sent / rate - (time.monotonic() - started) if rate > 0 else 0.0
            if ahead > 0:
                await asyncio.sleep(ahead)
            if time.monotonic() - started > seconds:
                break
            pending.append(await producer.send(topic, value, key=key))
            sent += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent


def start_producer(
    env: dict[str, str], spec: dict[str, int], rate: float, seconds: float
) -> subprocess.Popen[str]:
    """`producer_child` in a process of its own (see there)."""
    command = [
        sys.executable, "-m", "bench.soak", "--producer-child", json.dumps(spec),
        "--rate", str(rate), "--load-seconds", str(seconds),
    ]  # fmt: skip
    return subprocess.Popen(
        command, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )


def producer_child(bootstrap: str, topic: str, workload: str, rate: float, seconds: float) -> None:
    """The ingestion stream, in a process of its own so it does not share the load generator's
    event loop: builds the workload first, prints `ready`, sends on a line on stdin, prints
    the count sent as JSON."""
    spec = json.loads(workload)
    stream = list(records(Workload(**{**spec, "start": past_start(spec["sessions"])})))
    print("ready", flush=True)
    sys.stdin.readline()
    sent = asyncio.run(produce(bootstrap, topic, stream, rate, seconds))
    print(json.dumps({"sent": sent}), flush=True)
