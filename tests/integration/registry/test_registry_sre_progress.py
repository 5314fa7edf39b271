"""On a terminal a long operation draws its progress (records/s, ETA) on stderr; piped, it
prints nothing but its results (the other SRE tests check that half)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
from sre_cli import CLI_TIMEOUT, cli_env

from session_contracts.topics import Topics
from session_registry.workload import Workload, records

pytestmark = pytest.mark.kafka


def _read_all(fd: int) -> bytes:
    chunks = []
    while True:
        try:
            chunk = os.read(fd, 65536)
        except OSError:  # EIO: the terminal's other end is closed
            break
        if not chunk:
            break
        chunks.append(chunk)
    return b"".join(chunks)


async def test_rebuild_on_a_terminal_shows_records_per_second_and_eta(
    send: Callable[..., Awaitable[None]],
    topics: Topics,
    kafka_bootstrap: str,
    db_url: str,
    tmp_path: Path,
) -> None:
    log = list(records(Workload(sessions=100, activity=4, seed=2)))
    await send(*log, topic=topics.events)
    live = f"sqlite+aiosqlite:///{tmp_path / 'live.db'}"  # never touched: a rebuild fills db_url
    env = {**cli_env(kafka_bootstrap, topics, live, "unused"), "TERM": "xterm", "COLUMNS": "160"}
    terminal, other_end = os.openpty()
    try:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "session_registry",
            "rebuild",
            "--into",
            db_url,
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=other_end,
        )
        os.close(other_end)
        reading = asyncio.get_running_loop().run_in_executor(None, _read_all, terminal)
        out, _ = await asyncio.wait_for(process.communicate(), CLI_TIMEOUT)
        drawn = (await asyncio.wait_for(reading, CLI_TIMEOUT)).decode("utf-8", "replace")
    finally:
        os.close(terminal)
    assert process.returncode == 0, drawn
    assert f"{len(log)} events" in out.decode()  # the result still goes to stdout
    assert "replaying" in drawn and "records/s" in drawn and "ETA" in drawn
    assert f"{len(log)}/{len(log)}" in drawn
