"""A statement the database stops at its time limit (`statement_timeout`: 15 s, an exact count
60 s) is answered 503 with the reason and Retry-After, never a bare 500, and the connection
serves the next request. The limits here are made tiny and the statements slow."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncConnection

from read_model import postgres
from read_model.postgres import PostgresStore

pytestmark = pytest.mark.postgres


@pytest.fixture
def slow_statements(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every statement of the store waits 50 ms first, inside its step's limits, made 5 ms."""
    for name in ("_CAPPED", "_SEARCH"):
        monkeypatch.setattr(postgres, name, {**getattr(postgres, name), "statement_timeout": "5ms"})
    run = PostgresStore.run

    async def slowly(
        self: PostgresStore, conn: AsyncConnection, statement: Any, values: Any
    ) -> Any:
        await conn.exec_driver_sql("SELECT pg_sleep(0.05)")
        return await run(self, conn, statement, values)

    monkeypatch.setattr(PostgresStore, "run", slowly)


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_a_search_stopped_at_its_time_limit_is_a_503_saying_so(
    slow_statements: None, db_url: str, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for params in ({"q": "alice"}, {"q": "alice", "count": "exact", "limit": "1"}):
        stopped = await client.get("/api/v1/sessions", params=params, headers=auth)
        assert stopped.status_code == 503, stopped.text
        assert stopped.headers["Retry-After"]
        detail = stopped.json()["detail"]
        assert "time limit" in detail and "narrow the search" in detail
        assert stopped.json()["reason"] == "time_limit"  # what the admin page tells apart
        # a list without a search step keeps the connections' own limit (15 s): served, on
        # the connection the stopped statement was on
        assert (await client.get("/api/v1/sessions", headers=auth)).status_code == 200
