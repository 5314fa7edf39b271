"""A Kafka broker or PostgreSQL cluster of a test's own, for fault injection (stop, restart).

Never stop the shared broker or cluster: other tests run on them. These run the same deploy
scripts on free ports with state in the test's own directory, so data survives a restart of
the same instance and nothing else is disturbed. Use the `private_kafka` / `private_postgres`
fixtures (tests/conftest.py), or `start_private_broker` for the function form.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path

from devstack.deploy_scripts import printed, run_script

FIRST_PORT, PORTS_PER_WORKER = 20_000, 1_500
"""Ports handed out by `free_port`: each xdist worker its own block, all below Linux's
ephemeral range (32768-60999 by default), from which every outgoing connection takes its
local port."""
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on, for a server a test starts.

    Not one the kernel picks (`bind(("127.0.0.1", 0))`): between this call and the server's
    bind, any outgoing connection on the machine (a Kafka client, another worker's database
    pool) could take an ephemeral port, and the server would fail with "address in use". So
    the port comes from this worker's block below the ephemeral range, is never handed out
    twice in a process, and is probed free first (another run of the suite may share the
    machine: it starts elsewhere in the block, after the process id).
    """
    worker = int(os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw") or 0)
    first = FIRST_PORT + worker * PORTS_PER_WORKER
    start = os.getpid() % PORTS_PER_WORKER
    for step in range(PORTS_PER_WORKER):
        port = first + (start + step) % PORTS_PER_WORKER
        if port in _handed_out:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free port in {first}-{first + PORTS_PER_WORKER - 1}")


async def _run_script(script: str, command: str, env: dict[str, str], *args: str) -> str:
    """`deploy/<script> <command> [args...]` (`devstack.deploy_scripts.run_script`: its stdout,
    or an error with both streams) in a thread, so the test's event loop runs meanwhile."""
    return await asyncio.to_thread(run_script, script, command, env, args=args)


class PrivateKafka:
    """A single-node KRaft broker on its own ports; same ports and data across stop/start."""

    def __init__(
        self,
        state_dir: Path,
        port: int | None = None,
        heap: str = "512m",
        env: dict[str, str] | None = None,
    ) -> None:
        self.port = port or free_port()
        self.state_dir = state_dir
        self.bootstrap = f"127.0.0.1:{self.port}"
        self._env = {
            **os.environ,
            "KAFKA_PORT": str(self.port),
            "KAFKA_CONTROLLER_PORT": str(free_port()),
            "SESSIONS_STATE_DIR": str(state_dir),
            "KAFKA_HEAP": heap,
            # C1 only: a broker that lives for one test starts on 40% less CPU, and the
            # suite runs several at once on a 2-core machine
            "KAFKA_JVM_OPTS": "-XX:TieredStopAtLevel=1",
            **(env or {}),
        }

    async def start(self) -> str:
        """Start (or find running) and wait until ready; return the bootstrap servers."""
        output = await _run_script("kafka.sh", "start", self._env)
        started = printed(output, "KAFKA_BOOTSTRAP_SERVERS")
        if started != self.bootstrap:
            raise RuntimeError(f"kafka.sh started {started}, expected {self.bootstrap}")
        return self.bootstrap

    async def stop(self) -> None:
        """Graceful stop (SIGTERM, then SIGKILL after 30 s); a no-op when not running."""
        await _run_script("kafka.sh", "stop", self._env)

    async def restart(self) -> None:
        """Stop, then start on the same ports with the same data."""
        await self.stop()
        await self.start()

    def segment(self, topic: str, partition: int) -> Path:
        """The log segment of a partition on this broker's disk (one: a young partition)."""
        folder = self.state_dir / f"kafka-{self.port}" / "data" / f"{topic}-{partition}"
        (segment,) = folder.glob("*.log")
        return segment


def flip_bit(segment: Path, marker: bytes) -> bytes:
    """Flip one bit in the middle of the only occurrence of `marker` in a log segment, in place,
    as a failing disk would; return the marker as it now reads (flipping that mends it). The
    broker reads its log through the page cache: its next fetch serves the changed bytes."""
    data = segment.read_bytes()
    assert data.count(marker) == 1, marker
    at = data.index(marker) + len(marker) // 2
    with segment.open("r+b") as file:
        file.seek(at)
        file.write(bytes([data[at] ^ 0x01]))
    middle = len(marker) // 2
    return marker[:middle] + bytes([marker[middle] ^ 0x01]) + marker[middle + 1 :]


class PrivatePostgres:
    """A PostgreSQL cluster on its own port; same data across stop/start; `destroy` deletes it."""

    def __init__(self, state_dir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.state_dir = state_dir
        base = f"postgresql+asyncpg://sessions:sessions@127.0.0.1:{self.port}"
        self.admin_url = f"{base}/sessions_test"
        self.database_url = f"{base}/sessions"
        self._env = {**os.environ, "PGPORT": str(self.port), "SESSIONS_STATE_DIR": str(state_dir)}

    @property
    def env(self) -> dict[str, str]:
        """The environment its deploy script runs with (PGPORT, SESSIONS_STATE_DIR)."""
        return dict(self._env)

    async def start(self) -> str:
        """Start (initdb the first time) and wait until it answers; return the admin URL."""
        started = printed(
            await _run_script("postgres.sh", "start", self._env), "SESSIONS_TEST_POSTGRES_URL"
        )
        if started != self.admin_url:
            raise RuntimeError(f"postgres.sh started {started}, expected {self.admin_url}")
        return self.admin_url

    async def stop(self) -> None:
        """Fast shutdown (open connections are cut); a no-op when not running."""
        await _run_script("postgres.sh", "stop", self._env)

    async def restart(self) -> None:
        """Stop, then start on the same port with the same data."""
        await _run_script("postgres.sh", "restart", self._env)

    async def destroy(self) -> None:
        """Stop and delete the cluster's files."""
        await _run_script("postgres.sh", "destroy", self._env)

    async def prewarm(self, database: str, *relations: str) -> str:
        """`deploy/postgres.sh prewarm DATABASE RELATION[:read]...`; its output."""
        return await _run_script("postgres.sh", "prewarm", self._env, database, *relations)


async def start_private_broker(
    state_dir: Path, port: int | None = None
) -> tuple[str, Callable[[], Awaitable[None]], Callable[[], Awaitable[str]]]:
    """Start a private broker; return (bootstrap servers, stop, start) — the function form."""
    broker = PrivateKafka(state_dir, port)
    await broker.start()
    return broker.bootstrap, broker.stop, broker.start
