"""A pooled connection the server ends within the alive-bypass window (handed out untested):
the request that meets it answers 503 with Retry-After, never a bare 500, and the next one is
answered on a new connection."""

from __future__ import annotations

import asyncio

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest
from admin_api_support import make_settings

from admin_api.settings import AdminApiSettings
from devstack.scratch_databases import asyncpg_dsn
from read_model import postgres

pytestmark = pytest.mark.postgres


@pytest.fixture
def settings(db_url: str) -> AdminApiSettings:
    """The requests are the pool's only users: the schema's standing is read by /readyz
    alone, not also at start. A background read that met an ended connection first would
    invalidate the pool, and the request would be answered on a new connection (also right,
    but not the path under test)."""
    return make_settings(db_url, schema_check_seconds=0)


@pytest.fixture
def window_outlasting_the_test(monkeypatch: pytest.MonkeyPatch) -> None:
    """Set before the app (and its pool) is made."""
    monkeypatch.setattr(postgres, "ALIVE_BYPASS", 60.0)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_connection_ended_within_the_window_is_a_503_then_replaced(
    window_outlasting_the_test: None, db_url: str, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    assert (await client.get("/api/v1/sessions", headers=auth)).status_code == 200
    admin = await asyncpg.connect(asyncpg_dsn(db_url))
    try:
        # a first page (one statement, no transaction) and a search (a read transaction)
        for params in ({}, {"q": "alice"}):
            await _end_every_connection_but(admin)

            met = await client.get("/api/v1/sessions", params=params, headers=auth)

            assert met.status_code == 503, met.text
            assert met.headers["Retry-After"]
            assert "database is unavailable" in met.json()["detail"]
            again = await client.get("/api/v1/sessions", params=params, headers=auth)
            assert again.status_code == 200
    finally:
        await admin.close()


async def _end_every_connection_but(admin: asyncpg.Connection) -> None:
    """`pg_terminate_backend` every other connection to the database, and wait until gone."""
    others = "datname = current_database() AND pid <> pg_backend_pid()"
    ended = await admin.fetch(
        f"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE {others}"
    )
    assert ended and all(row[0] for row in ended)
    for _ in range(100):
        if not await admin.fetchval(f"SELECT count(*) FROM pg_stat_activity WHERE {others}"):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("connections still there")
