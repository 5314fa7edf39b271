"""One search budget per tenant across every admin API process on the database.

A process decides alone whether a tenant's search may start (`SearchBudget.check`: no round
trip on the request's path), from buckets it keeps in memory. About once a second
(`SESSIONS_SEARCH_BUDGET_SYNC_SECONDS`) `BudgetSync` adds what its tenants' searches charged
since the last sync to the buckets every process shares (table `search_budgets`), reads those
buckets back, and makes them its own. So N processes behind a load balancer give a tenant one
budget, not N: a tenant that spent it through one process is refused by every process from
their next sync on. Between two syncs each process decides on what it last read, so a tenant
may overdraw by what it reads in that time through the processes it reaches, plus, as in one
process, the searches already reading when it ran out.

A sync that fails (the database away, a schema from before revision 1001) keeps what it took
for the next one and leaves the processes' buckets as they were: each process then keeps its
budgets to itself, as before, until the sync succeeds again. Each failure is counted
(`admin_api_search_budget_syncs_total{outcome="failed"}`), and logged once a streak.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from prometheus_client import CollectorRegistry, Counter
from sqlalchemy.exc import SQLAlchemyError

from admin_api.metrics import outcome_counter
from admin_api.service_layer.tenant_slots import SearchBudget
from read_model import search_budgets
from read_model.store import Store

log = logging.getLogger(__name__)


def sync_counter(metrics: CollectorRegistry | None) -> Counter:
    """`admin_api_search_budget_syncs_total{outcome}` on `metrics` (None: on none), both
    outcomes exported from the start (at 0), so an alert sees a process that never synced."""
    return outcome_counter(
        "admin_api_search_budget_syncs",
        "Syncs of this process's search budgets with the other processes', by outcome",
        metrics,
    )


class BudgetSync:
    """Shares `budgets` (those turned on) with the other processes through `store`."""

    def __init__(
        self,
        store: Store,
        budgets: Sequence[SearchBudget],
        *,
        syncs: Counter | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.store = store
        self.budgets = tuple(budget for budget in budgets if budget.seconds_per_minute)
        for budget in self.budgets:
            budget.share()
        self._clock = clock
        """Seconds since the epoch for the shared buckets; None: the database's clock."""
        self._syncs = syncs if syncs is not None else sync_counter(None)
        self._failing = False

    async def sync_once(self) -> None:
        """Add what this process charged since the last sync to the shared buckets, then take
        theirs as its own. What could not be added is kept for the next sync (and nothing
        taken in); what was added is never added again, even if the read after it fails."""
        if not self.budgets:
            return
        taken = [budget.take_unsynced() for budget in self.budgets]
        if any(taken):
            try:
                await self._add(taken)
            except BaseException:
                for budget, spent in zip(self.budgets, taken, strict=True):
                    budget.restore(spent)
                raise
        now, shared = await self._read()
        for budget, levels in zip(self.budgets, shared, strict=True):
            budget.adopt(levels)
        full = [
            budget
            for budget, levels in zip(self.budgets, shared, strict=True)
            if any(seconds >= budget.seconds_per_minute for seconds in levels.values())
        ]
        if full:  # rows refilled to full, the same as none: deleted (once per spending tenant)
            async with self.store.engine.begin() as conn:
                for budget in full:
                    await search_budgets.forget_full(
                        conn, budget.name, now=now, size=budget.seconds_per_minute
                    )

    async def _add(self, taken: Sequence[dict[str, float]]) -> None:
        """One transaction: each budget's spending taken from its tenants' shared buckets."""
        async with self.store.engine.begin() as conn:
            now = self._clock() if self._clock else await search_budgets.database_time(conn)
            for budget, spent in zip(self.budgets, taken, strict=True):
                await search_budgets.spend(
                    conn, self.store, budget.name, spent, now=now, size=budget.seconds_per_minute
                )

    async def _read(self) -> tuple[float, list[dict[str, float]]]:
        """Every shared bucket, refilled to now, by budget (one statement, in autocommit: a
        sync with nothing to add costs one round trip); and that now."""
        async with self.store.engine.connect() as conn:
            read_at, stored = await search_budgets.buckets(await self.store.one_statement(conn))
        now = self._clock() if self._clock else read_at
        shared = [
            {
                tenant_id: bucket.level(now, budget.seconds_per_minute)
                for tenant_id, bucket in stored.get(budget.name, {}).items()
            }
            for budget in self.budgets
        ]
        return now, shared

    async def run(self, every: float) -> None:
        """`sync_once` every `every` seconds until cancelled; a failed sync is counted, logged
        (once a streak), and retried at the next."""
        while True:
            await asyncio.sleep(every)
            try:
                await self.sync_once()
            except (SQLAlchemyError, OSError, TimeoutError) as error:
                self._failed(f"{type(error).__name__}: {error}".splitlines()[0])
            except Exception:  # a bug: its traceback, and the budgets stay per process
                self._syncs.labels("failed").inc()
                log.exception("sharing the search budgets failed")
                self._failing = True
            else:
                self._syncs.labels("ok").inc()
                if self._failing:
                    log.info("search budgets shared with the other processes again")
                    self._failing = False

    def _failed(self, reason: str) -> None:
        self._syncs.labels("failed").inc()
        if not self._failing:
            log.warning(
                "cannot share the search budgets with the other admin API processes (%s); "
                "this process keeps its own until it can",
                reason,
            )
            self._failing = True
