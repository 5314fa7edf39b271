"""Running `session-registry` as an SRE does, from an async test: a subprocess that never
blocks the test's event loop (a registry in the same loop keeps heartbeating meanwhile)."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from session_contracts.topics import Topics

CLI_TIMEOUT = 180.0
"""A bound on a hang (the machine is shared), not a speed claim."""


@dataclass(frozen=True)
class Done:
    """A finished CLI run."""

    code: int
    out: str
    err: str

    def lines(self) -> list[dict[str, Any]]:
        """stdout as JSON lines."""
        return [json.loads(text) for text in self.out.splitlines() if text.strip()]


def cli_env(bootstrap: str, topics: Topics, db_url: str, group: str) -> dict[str, str]:
    """The environment of a CLI run on these topics, database and consumer group."""
    return {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": bootstrap,
        "SESSIONS_TOPIC_PREFIX": topics.prefix,
        "SESSIONS_TOPIC_PARTITIONS": str(topics.partitions),
        "SESSIONS_DATABASE_URL": db_url,
        "SESSIONS_CONSUMER_GROUP": group,
    }


async def cli(env: dict[str, str], *args: str, code: int | None = 0) -> Done:
    """Run `python -m session_registry ARGS`; check its exit code unless `code` is None."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "session_registry",
        *args,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
    done = Done(process.returncode or 0, out.decode(), err.decode())
    if code is not None:
        assert done.code == code, (args, done)
    return done
