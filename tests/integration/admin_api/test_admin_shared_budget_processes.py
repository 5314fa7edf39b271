"""Two admin API servers (replicas: processes of their own, on ports of their own) on one
database, both backends: a tenant that overdrew its search budget through the first is
refused by the second, which never served it a search.

The test waits until the first has added the spending to `search_budgets` and the second has
synced since (its sync counter on /metrics), then asks the second once: 429. Before the
budgets were shared, the second answered 200: it had a budget of its own for the tenant.
"""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
from admin_api_support import make_settings
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.auth import issue_dev_token
from polling import until
from private_services import free_port
from read_model.tables import search_budgets

SECRET = "s" * 40


@asynccontextmanager
async def server(db_url: str, log: Path) -> AsyncIterator[str]:
    """`uvicorn --factory admin_api.app:app_from_env` on a free port: its base URL."""
    port = free_port()
    env = {
        **os.environ,
        "SESSIONS_DATABASE_URL": db_url,
        "SESSIONS_ENVIRONMENT": "development",
        "SESSIONS_JWT_SECRET": SECRET,
        "SESSIONS_SEARCH_SECONDS_PER_MINUTE": "1e-6",  # the first search overdraws it
        "SESSIONS_SEARCH_BUDGET_SYNC_SECONDS": "0.05",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing listens: reads only
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    with log.open("wb") as out:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "uvicorn", "--factory", "admin_api.app:app_from_env",
            "--host", "127.0.0.1", "--port", str(port), "--log-level", "warning",
            "--no-access-log",
            env=env, stdout=out, stderr=out,
        )  # fmt: skip
        base = f"http://127.0.0.1:{port}"
        try:
            await until(lambda: _ready(base), 60, f"the admin API on port {port}")
            yield base
        finally:
            process.terminate()
            async with asyncio.timeout(30):  # a bound on a hang
                await process.wait()


async def _ready(base: str) -> bool:
    try:
        async with httpx.AsyncClient() as client:
            return (await client.get(f"{base}/readyz")).status_code == 200
    except httpx.TransportError:
        return False


async def _syncs(client: httpx.AsyncClient, base: str) -> float:
    text = (await client.get(f"{base}/metrics")).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "admin_api_search_budget_syncs_total"
        and sample.labels == {"outcome": "ok"}
    )


async def test_a_tenant_refused_by_one_server_is_refused_by_another_that_never_served_it(
    engine: AsyncEngine, db_url: str, tmp_path: Path
) -> None:
    token = issue_dev_token(make_settings(db_url, jwt_secret=SECRET), "admin-1", "acme")
    ours = {"Authorization": f"Bearer {token}"}
    search = {"q": "ada"}
    async with AsyncExitStack() as stack:
        first = await stack.enter_async_context(server(db_url, tmp_path / "first.log"))
        second = await stack.enter_async_context(server(db_url, tmp_path / "second.log"))
        client = await stack.enter_async_context(httpx.AsyncClient(headers=ours))

        assert (await client.get(f"{first}/api/v1/sessions", params=search)).status_code == 200
        assert (await client.get(f"{first}/api/v1/sessions", params=search)).status_code == 429

        async def shared() -> bool:
            async with engine.connect() as conn:
                rows = await conn.execute(select(search_budgets.c.tenant_id))
                return [tenant for (tenant,) in rows] == ["acme"]

        await until(shared, 30, "the first server adding the tenant's spending")
        synced = await _syncs(client, second)

        async def synced_since() -> bool:  # a whole sync begun after the row was there
            return await _syncs(client, second) >= synced + 2

        await until(synced_since, 30, "the second server syncing since then")

        refused = await client.get(f"{second}/api/v1/sessions", params=search)
        assert refused.status_code == 429, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        other = issue_dev_token(make_settings(db_url, jwt_secret=SECRET), "admin-2", "globex")
        served = await client.get(
            f"{second}/api/v1/sessions",
            params=search,
            headers={"Authorization": f"Bearer {other}"},
        )
        assert served.status_code == 200, served.text  # another tenant's budget is its own
