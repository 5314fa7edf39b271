"""bench.ingest's instances round: the parent's side of its line protocol with the instances.

Two stand-in instances (small Python processes speaking the protocol: an assignment line,
then `go`, a `done` line, then `stop`) take the place of registry processes, so no broker or
database is needed. The round once failed on every run: the readers of the assignment lines
left pending when the split was complete were cancelled but not awaited, and the next read of
the same pipe raised "readuntil() called while another coroutine is already waiting".
"""

from __future__ import annotations

import asyncio
import sys

import pytest

from bench.ingest import _run_instances

_INSTANCE = """
import json, sys
print(json.dumps({"assigned": sys.argv[1].split(",")}), flush=True)
if sys.stdin.readline().strip() != "go":
    sys.exit(3)
started = float(sys.argv[2])
print(json.dumps({
    "done": started + 2.0, "started": started, "cpu_seconds": 1.5,
    "rss": [[0.0, 100], [1.0, 120]], "assignments": 1,
}), flush=True)
sys.exit(0 if sys.stdin.readline().strip() == "stop" else 4)
"""


async def _instance(partitions: str, started: float) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _INSTANCE,
        partitions,
        str(started),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )


async def test_a_round_splits_says_go_and_collects_every_instances_figures() -> None:
    children = [await _instance("e0,e1", 10.0), await _instance("e2,c0", 10.5)]
    try:
        async with asyncio.timeout(30):
            round_ = await _run_instances(children, 4, "no_such_database")
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    assert [child.returncode for child in children] == [0, 0]  # each got go, then stop
    assert round_.seconds == pytest.approx(12.5 - 10.0)  # first start to last end
    assert round_.cpu_seconds == [1.5, 1.5]
    assert round_.rss == [[(0.0, 100), (1.0, 120)]] * 2
    assert round_.database_cpu_seconds == 0.0  # no backend serves that database
