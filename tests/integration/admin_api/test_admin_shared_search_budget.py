"""On both backends: a tenant's search budget is one for every admin API process on the
database, not one per process.

Each app here stands for a process of its own (its own engine and buckets), as uvicorn
workers or replicas behind a load balancer are. Before, a tenant refused by one process was
served by the next: N processes gave it N budgets. The syncs are run by hand where the test
says when; `test_admin_shared_budget_processes.py` runs two servers whose own background
syncs do it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
import pytest
from admin_api_support import NOW, OTHER_TENANT, RecordingBus, insert, make_settings, session_row
from prometheus_client import CollectorRegistry
from sqlalchemy import select
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import create_app
from admin_api.runtime import Runtime
from admin_api.service_layer.shared_budgets import BudgetSync, sync_counter
from admin_api.service_layer.tenant_slots import SearchBudget
from asgi_served import served
from polling import until
from read_model import search_budgets as search_budgets_adapter
from read_model.database import open_store
from read_model.tables import search_budgets

SEARCH = {"q": "ada"}


@asynccontextmanager
async def process(
    db_url: str, **overrides: float
) -> AsyncIterator[tuple[httpx.AsyncClient, Runtime]]:
    """An admin API app with its lifespan run: a client to it, and its runtime."""
    app = create_app(make_settings(db_url, **overrides), bus=RecordingBus(), clock=lambda: NOW)
    async with served(app) as c:
        yield c, app.state.runtime


def sync_of(runtime: Runtime) -> BudgetSync:
    return BudgetSync(runtime.store, runtime.budgets)


async def test_a_tenant_that_spent_its_budget_through_one_process_is_refused_by_the_others(
    engine: AsyncEngine, db_url: str, token: Callable[..., str]
) -> None:
    await insert(
        engine,
        [
            session_row(user_name="Ada Lovelace"),
            session_row(user_name="Ada Byron", tenant_id=OTHER_TENANT),
        ],
    )
    ours = {"Authorization": f"Bearer {token()}"}
    theirs = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT)}"}
    # a microsecond a minute: the first search overdraws it; syncs by hand only
    # (the apps' own syncs every 60 s: none within the test)
    budget = {"search_seconds_per_minute": 1e-6, "search_budget_sync_seconds": 60}
    async with (
        process(db_url, **budget) as (first, first_runtime),
        process(db_url, **budget) as (second, second_runtime),
        process(db_url, **budget) as (third, third_runtime),
    ):
        found = await first.get("/api/v1/sessions", params=SEARCH, headers=ours)
        assert [row["user_name"] for row in found.json()["items"]] == ["Ada Lovelace"]
        assert (await first.get("/api/v1/sessions", params=SEARCH, headers=ours)).status_code == 429
        # unshared, the second process serves the tenant a budget of its own: the hole
        served = await second.get("/api/v1/sessions", params=SEARCH, headers=ours)
        assert served.status_code == 200, served.text

        for runtime in (first_runtime, second_runtime, third_runtime):
            await sync_of(runtime).sync_once()

        for client in (second, third):  # third never served the tenant a search
            refused = await client.get("/api/v1/sessions", params=SEARCH, headers=ours)
            assert refused.status_code == 429, refused.text
            assert int(refused.headers["Retry-After"]) >= 1
            export = await client.get("/api/v1/sessions/export.csv", params=SEARCH, headers=ours)
            assert export.status_code == 429
            # its lists without a text condition, and another tenant's searches, are served
            assert (await client.get("/api/v1/sessions", headers=ours)).status_code == 200
        other = await third.get("/api/v1/sessions", params=SEARCH, headers=theirs)
        assert [row["user_name"] for row in other.json()["items"]] == ["Ada Byron"]


async def test_terminations_by_a_text_filter_share_their_own_budget(
    engine: AsyncEngine, db_url: str, token: Callable[..., str]
) -> None:
    await insert(engine, [session_row(user_name="Ada Lovelace")])
    ours = {"Authorization": f"Bearer {token()}"}
    terminate, by_text = "/api/v1/sessions/terminations", {"filter": SEARCH}
    budget = {"filter_termination_seconds_per_minute": 1e-6, "search_budget_sync_seconds": 60}
    async with (
        process(db_url, **budget) as (first, first_runtime),
        process(db_url, **budget) as (second, second_runtime),
    ):
        accepted = await first.post(terminate, json=by_text, headers=ours)
        assert accepted.status_code == 202, accepted.text
        await sync_of(first_runtime).sync_once()
        await sync_of(second_runtime).sync_once()
        refused = await second.post(terminate, json=by_text, headers=ours)
        assert refused.status_code == 429, refused.text
        assert "terminations by a filter with a text condition" in refused.json()["detail"]
        # the searches' budget is another: the tenant's searches are served
        assert (
            await second.get("/api/v1/sessions", params=SEARCH, headers=ours)
        ).status_code == 200
        assert second_runtime.bus.commands == []  # type: ignore[attr-defined]


async def test_spending_added_by_many_processes_at_once_all_counts(
    db_url: str, engine: AsyncEngine
) -> None:
    """Every process's spending ends in the shared bucket: the upsert refills and subtracts in
    one statement under the row's lock, so none overwrites another's."""
    size, processes = 60.0, 8
    async with AsyncExitStack() as stack:
        syncs, budgets = [], []
        for _ in range(processes):
            store = open_store(db_url)
            stack.push_async_callback(store.dispose)
            budget = SearchBudget(size, clock=lambda: 0.0)  # nor here
            syncs.append(BudgetSync(store, [budget], clock=lambda: 5000.0))  # no refill between
            budget.charge("acme", 2.0)
            budget.charge("globex", 0.5)
            budgets.append(budget)
        await asyncio.gather(*(sync.sync_once() for sync in syncs))
        await syncs[0].sync_once()  # reads what every one added
    async with engine.connect() as conn:
        rows = dict(
            (await conn.execute(select(search_budgets.c.tenant_id, search_budgets.c.seconds))).all()
        )
    assert rows == {
        "acme": pytest.approx(size - 2.0 * processes),
        "globex": pytest.approx(size - 0.5 * processes),
    }
    assert budgets[0].left("acme") == pytest.approx(size - 2.0 * processes)


async def test_a_shared_bucket_refills_by_the_database_clock_and_is_forgotten_once_full(
    db_url: str, engine: AsyncEngine
) -> None:
    now = [1000.0]
    store = open_store(db_url)
    try:
        budget = SearchBudget(6.0, clock=lambda: now[0])  # a tenth of a second back a second
        sync = BudgetSync(store, [budget], clock=lambda: now[0])
        budget.charge("acme", 3.0)
        await sync.sync_once()
        assert budget.left("acme") == pytest.approx(3.0)
        now[0] += 10  # one second back
        await sync.sync_once()
        assert budget.left("acme") == pytest.approx(4.0)
        # the row still holds 3 s as of 1000 (reads refill it, only spending writes): a clock
        # behind that time refills nothing, and the spending still counts
        now[0] -= 100
        budget.charge("acme", 1.0)
        await sync.sync_once()
        assert budget.left("acme") == pytest.approx(2.0)
        now[0] += 200  # 100 s past the row's time: full, and the row deleted
        await sync.sync_once()
        assert budget.left("acme") == 6.0 and budget.tracked() == 0
        async with engine.connect() as conn:
            assert (await conn.execute(select(search_budgets))).all() == []
        # the database's own clock when none is given (PostgreSQL's, or this host's)
        by_the_database = BudgetSync(store, [budget])
        budget.charge("acme", 1.0)
        await by_the_database.sync_once()
        async with engine.connect() as conn:
            ((at,),) = (await conn.execute(select(search_budgets.c.at))).all()
        assert abs(at - time.time()) < 600
    finally:
        await store.dispose()


async def test_a_sync_that_fails_keeps_the_spending_for_the_next_and_the_buckets_as_they_were(
    db_url: str, engine: AsyncEngine, caplog: pytest.LogCaptureFixture
) -> None:
    store = open_store(db_url)
    try:
        budget = SearchBudget(6.0, clock=lambda: 0.0)
        metrics = CollectorRegistry()
        sync = BudgetSync(store, [budget], syncs=sync_counter(metrics), clock=lambda: 1000.0)
        async with engine.begin() as conn:
            await conn.run_sync(search_budgets.drop)  # a schema from before revision 1001
        budget.charge("acme", 2.0)
        with pytest.raises(Exception, match="search_budgets"):
            await sync.sync_once()
        assert budget.left("acme") == pytest.approx(4.0)  # this process's own figure stands

        caplog.set_level(logging.INFO, "admin_api.service_layer.shared_budgets")
        running = asyncio.create_task(sync.run(0.01))
        try:
            await until(lambda: _counted(metrics, "failed", 3), 30, "three failed syncs")
            warnings = [
                r
                for r in caplog.records
                if r.name == "admin_api.service_layer.shared_budgets"
                and r.levelno == logging.WARNING
            ]
            assert len(warnings) == 1, warnings  # once a streak, not once a second
            assert "keeps its own" in warnings[0].getMessage()
            async with engine.begin() as conn:
                await conn.run_sync(search_budgets.create)
            await until(lambda: _counted(metrics, "ok", 1), 30, "a sync after the table is back")
        finally:
            running.cancel()
            await asyncio.wait({running})
        assert any("again" in r.getMessage() for r in caplog.records)
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(search_budgets.c.tenant_id, search_budgets.c.seconds))
            ).all()
        assert [tuple(row) for row in rows] == [("acme", pytest.approx(4.0))]
    finally:
        await store.dispose()


async def _counted(metrics: CollectorRegistry, outcome: str, at_least: int) -> bool:
    counted = metrics.get_sample_value("admin_api_search_budget_syncs_total", {"outcome": outcome})
    return (counted or 0) >= at_least


async def test_spending_added_before_a_failed_read_is_not_added_again(
    db_url: str, engine: AsyncEngine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The spending is committed, then the read of the shared buckets fails: the next sync
    must not add it a second time (the tenant would be charged twice)."""
    store = open_store(db_url)
    try:
        budget = SearchBudget(6.0, clock=lambda: 0.0)
        sync = BudgetSync(store, [budget], clock=lambda: 1000.0)
        budget.charge("acme", 2.0)
        read = search_budgets_adapter.buckets

        async def lost(conn: object) -> object:
            raise OperationalError("SELECT", {}, ConnectionResetError("connection lost"))

        monkeypatch.setattr(search_budgets_adapter, "buckets", lost)
        with pytest.raises(OperationalError):
            await sync.sync_once()
        monkeypatch.setattr(search_budgets_adapter, "buckets", read)
        await sync.sync_once()
        async with engine.connect() as conn:
            rows = (
                await conn.execute(select(search_budgets.c.tenant_id, search_budgets.c.seconds))
            ).all()
        assert [tuple(row) for row in rows] == [("acme", pytest.approx(4.0))]
        assert budget.left("acme") == pytest.approx(4.0)
    finally:
        await store.dispose()
