"""Under `uvicorn --workers 2` the admin API's request counters add up across the workers.

prometheus_client's multiprocess mode (`PROMETHEUS_MULTIPROC_DIR`): each worker writes its
counts to its own file; whichever worker answers /metrics sums every file. The test makes
requests on fresh connections (the kernel hands them to both workers), then checks that each
worker's own file holds part of them and that every scrape, whoever answers it, reports the
sum.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.metrics_core import Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from migrated import MigratedCopies
from private_services import free_port

REQUESTS = 200
WORKERS = 2
HEALTHZ = {"method": "GET", "route": "/healthz", "status": "200"}


def _healthz_count(families: Iterable[Metric]) -> float:
    return sum(
        sample.value
        for family in families
        for sample in family.samples
        if sample.name == "admin_api_requests_total" and sample.labels == HEALTHZ
    )


@pytest.fixture
async def database(tmp_path: Path, migrated: MigratedCopies) -> str:
    """A SQLite read model at this release's schema (/readyz is 503 on one behind it)."""
    url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    await migrated.migrate(url)
    return url


@pytest.fixture
def workers(tmp_path: Path, database: str) -> Iterator[tuple[str, Path]]:
    metrics_dir = tmp_path / "prometheus"
    metrics_dir.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "SESSIONS_DATABASE_URL": database,
        "SESSIONS_ENVIRONMENT": "development",
        "SESSIONS_JWT_SECRET": "w" * 40,
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing listens: reads only (degraded)
        # each worker keeps its own search budgets: nothing here is about sharing them
        "SESSIONS_SEARCH_BUDGET_SYNC_SECONDS": "0",
    }
    log = (tmp_path / "uvicorn.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable, "-m", "uvicorn", "--factory", "admin_api.app:app_from_env",
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(WORKERS),
            "--log-level", "warning", "--no-access-log",
        ],
        env=env, stdout=log, stderr=log,
    )  # fmt: skip
    try:
        yield f"http://127.0.0.1:{port}", metrics_dir
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
        log.close()


async def _wait_serving(base: str) -> None:
    async with asyncio.timeout(60):  # a bound on a hang, not a speed claim
        while True:
            try:
                async with httpx.AsyncClient() as client:
                    if (await client.get(f"{base}/readyz")).status_code == 200:
                        return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


async def test_request_counters_add_up_across_two_workers(
    workers: tuple[str, Path], tmp_path: Path
) -> None:
    base, metrics_dir = workers
    await _wait_serving(base)
    for _ in range(REQUESTS):
        async with httpx.AsyncClient() as client:  # a fresh connection: any worker takes it
            assert (await client.get(f"{base}/healthz")).status_code == 200

    per_worker: list[float] = []
    for counts in sorted(metrics_dir.glob("counter_*.db")):
        alone = tmp_path / f"only-{counts.stem}"
        alone.mkdir()
        shutil.copy(counts, alone / counts.name)
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=str(alone))  # type: ignore[no-untyped-call]
        per_worker.append(_healthz_count(iter(registry.collect())))
    assert len([c for c in per_worker if c > 0]) == WORKERS, per_worker  # both served some
    assert sum(per_worker) == REQUESTS

    for _ in range(2 * WORKERS):  # whichever worker answers the scrape: the sum
        async with httpx.AsyncClient() as client:
            scraped = (await client.get(f"{base}/metrics")).text
        assert _healthz_count(text_string_to_metric_families(scraped)) == REQUESTS
    assert "admin_api_request_seconds_bucket" in scraped
