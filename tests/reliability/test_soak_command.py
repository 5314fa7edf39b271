"""`python -m bench.soak` end to end at a tiny size, so the soak command cannot rot.

Asserts on what the run counted (requests answered, terminations applied, events, gateway
revocations), never on its times; the figures themselves belong to the full soak run.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import asyncpg  # type: ignore[import-untyped]
import pytest
from aiokafka.admin import AIOKafkaAdminClient

from bench.soak_burst import BurstResult
from bench.soak_load import KINDS, KindResult, LoadFigures, PhaseResult, merged

ROOT = Path(__file__).resolve().parents[2]
SESSIONS = 300


@pytest.mark.kafka
@pytest.mark.postgres
@pytest.mark.slow
async def test_soak_runs_end_to_end_and_counts_everything(
    kafka_bootstrap: str, postgres_admin_url: str, tmp_path: Path
) -> None:
    env = {
        **os.environ,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "SESSIONS_TEST_POSTGRES_URL": postgres_admin_url,
    }
    out, figures_file = tmp_path / "load.md", tmp_path / "figures.json"
    done = await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable, "-m", "bench.soak", "--population", str(SESSIONS),
            "--burst", str(SESSIONS), "--burst-tenants", "2", "--baseline-seconds", "3",
            "--load-seconds", "4", "--rate", "500", "--concurrency", "4",
            "--recover-seconds", "60", "--burst-timeout", "60",
            "--out", str(out), "--json", str(figures_file),
        ],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    figures = json.loads(figures_file.read_text())
    assert figures["lost"] == []

    load = figures["load"]
    for phase in ("idle", "loaded"):
        assert load[phase]["errors"] == 0
        assert load[phase]["terminations"] > 0, "each phase terminated sessions of its own"
        assert all(kind["count"] > 0 for kind in load[phase]["per_kind"].values())
    assert load["ingested"] > 0
    assert load["lag_drained"] is True
    assert load["terminations_not_applied"] == 0

    burst = figures["burst"]
    assert burst["sessions"] == SESSIONS
    assert burst["requested"] == burst["terminated_reported"] == SESSIONS
    assert burst["still_open"] == 0
    assert (burst["events"], burst["events_missing"], burst["events_duplicated"]) == (
        SESSIONS,
        0,
        0,
    )
    assert burst["revoked_at_gateways"] == SESSIONS

    # topic deletion completes on the broker shortly after the answer: poll, generously
    for _ in range(60):
        left = await _leftovers(kafka_bootstrap, postgres_admin_url, figures["run"])
        if left == ([], None):
            break
        await asyncio.sleep(0.5)
    assert left == ([], None), "the run removes its topics and database"

    table = out.read_text()
    assert f"| revoked at the gateways | {SESSIONS} of {SESSIONS} |" in table
    assert table.rstrip().endswith("Nothing lost.")
    assert table in done.stdout


async def _leftovers(
    bootstrap: str, admin_url: str, run: dict[str, str]
) -> tuple[list[str], object]:
    """The run's topics still on the broker, and its database if it still exists."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        topics = [t for t in await admin.list_topics() if t.startswith(run["topic_prefix"])]
    finally:
        await admin.close()
    conn = await asyncpg.connect(admin_url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        database = await conn.fetchval(
            "SELECT datname FROM pg_database WHERE datname = $1", run["database"]
        )
    finally:
        await conn.close()
    return topics, database


def _phase(errors: int = 0) -> PhaseResult:
    kinds = {kind: KindResult([1.0, 2.0]) for kind in KINDS}
    kinds[KINDS[0]].errors = errors
    return PhaseResult(kinds, 1.0, ["s-1"], ["list: first page: 500"] if errors else [])


def test_anything_lost_is_named() -> None:
    whole = BurstResult(
        sessions=10, commands=1, requested=10, terminated_reported=10, still_open=0,
        events=10, events_missing=0, revoked_at_gateways=10,
    )  # fmt: skip
    assert whole.lost == []
    assert whole.revoked_at_gateways == 10
    short = BurstResult(**{**whole.__dict__, "revoked_at_gateways": 9})
    assert short.lost == ["burst: 9 of 10 at gateways"]
    doubled = BurstResult(**{**whole.__dict__, "events_duplicated": 1})
    assert "duplicated for 1" in doubled.lost[0]

    fine = LoadFigures(_phase(), _phase(), 100, [(0.0, 5, 0)], 0.5, 0)
    assert fine.lost == []
    assert fine.max_lag == (0.0, 5)
    assert len(LoadFigures(_phase(), _phase(errors=1), 100, [], 0.5, 0).lost) == 1
    assert len(LoadFigures(_phase(), _phase(), 100, [], None, 0).lost) == 1
    assert len(LoadFigures(_phase(), _phase(), 100, [], 0.5, 2).lost) == 1
    assert not math.isnan(_phase().kinds[KINDS[0]].p(99))

    both = merged(_phase(), _phase(errors=2))
    assert (both.requests, both.errors, both.seconds) == (2 * 2 * len(KINDS) + 2, 2, 2.0)
    assert both.terminated_ids == ["s-1", "s-1"]
