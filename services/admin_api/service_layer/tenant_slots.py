"""How much of the database one tenant's searches take: how many a process reads at once
(`TenantSlots`: the rest wait, holding no database connection, so one tenant's admins cannot
take every connection of the shared pool) and for how long a minute (`SearchBudget`: past it
a search is refused with the time to wait, so one tenant's admins cannot keep the database's
CPU busy either). The budget is kept in each process and shared by every process on the
database through `service_layer.shared_budgets`."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass

from admin_api.domain.errors import ExportsBusy, SearchBudgetSpent

FORGET_ABOVE = 64
"""Buckets kept before the full ones are dropped (a full bucket is the same as none)."""


@dataclass
class _Bucket:
    seconds: float
    """Left to spend; negative: owed by a search that ran past what was left."""
    at: float
    """When `seconds` was last topped up (the clock's time)."""


class SearchBudget:
    """Seconds of reading per minute that one tenant's searches may take.

    A token bucket per tenant: it holds up to `seconds_per_minute` and refills at a sixtieth of
    that a second. A search may start while its tenant's bucket holds anything; what it then
    took (the time it held its slot) comes out of the bucket afterwards, so a search is never
    cut short, and the one that overdraws leaves the bucket owing, which the tenant's next
    searches wait out (`SearchBudgetSpent.retry_after`). Over any stretch of time a tenant's
    searches take at most a minute's budget plus `seconds_per_minute` / 60 of each second, plus
    what the searches already reading when it ran out take to finish (at most one per slot);
    other tenants' searches are never counted against it. 0 turns it off.

    The buckets live in this process. What it charged since it last shared them is kept
    (`take_unsynced`) for `shared_budgets.BudgetSync`, which adds it to the buckets every
    process shares and sets this process's buckets to theirs (`adopt`): then a tenant's
    budget is one across processes, give or take what they charge between two syncs.
    """

    def __init__(
        self,
        seconds_per_minute: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        spent_by: str = "searches",
        name: str = "searches",
    ) -> None:
        if not 0 <= seconds_per_minute < float("inf"):
            raise ValueError("seconds_per_minute must be 0 (off) or a positive number")
        self.seconds_per_minute = seconds_per_minute
        self.spent_by = spent_by
        """What the refusal says spent it (`SearchBudgetSpent`)."""
        self.name = name
        """Which budget it is where the processes share them (`search_budgets.budget`)."""
        self._rate = seconds_per_minute / 60
        self._clock = clock
        self._sleep = sleep
        self._buckets: dict[str, _Bucket] = {}
        self._unsynced: dict[str, float] = {}
        self._sharing = False

    def check(self, tenant_id: str) -> None:
        """Raise SearchBudgetSpent if the tenant's searches have nothing left to spend now."""
        left = self.left(tenant_id)
        if left <= 0:
            raise SearchBudgetSpent(
                max(1.0, -left / self._rate), self.seconds_per_minute, self.spent_by
            )

    async def repaid(self, tenant_id: str) -> None:
        """Return once the tenant's searches have something left to spend (at once if they
        have): what an export that started waits for before each of its later batches."""
        while (left := self.left(tenant_id)) <= 0:
            await self._sleep(-left / self._rate + 0.01)

    def charge(self, tenant_id: str, seconds: float) -> None:
        """Take `seconds` (a search's, once it has been read) from the tenant's bucket."""
        if not self.seconds_per_minute:
            return
        now = self._clock()
        bucket = self._buckets.get(tenant_id)
        if bucket is None:
            bucket = self._buckets[tenant_id] = _Bucket(self.seconds_per_minute, now)
        self._top_up(bucket, now)
        spent = max(0.0, seconds)
        bucket.seconds -= spent
        if spent and self._sharing:
            self._unsynced[tenant_id] = self._unsynced.get(tenant_id, 0.0) + spent
        if len(self._buckets) > FORGET_ABOVE:
            self._forget_full(now)

    def left(self, tenant_id: str) -> float:
        """Seconds the tenant's searches may still take now (negative: owed)."""
        bucket = self._buckets.get(tenant_id)
        if not self.seconds_per_minute or bucket is None:
            return self.seconds_per_minute or float("inf")
        self._top_up(bucket, self._clock())
        return bucket.seconds

    def share(self) -> None:
        """Keep what is charged from now on for `take_unsynced` (`BudgetSync` calls it; a
        budget no one shares keeps nothing of it)."""
        self._sharing = True

    def take_unsynced(self) -> dict[str, float]:
        """What each tenant's searches charged here since this was last taken (and not given
        back with `restore`): the share of this process for the buckets the processes share."""
        taken, self._unsynced = self._unsynced, {}
        return taken

    def restore(self, taken: Mapping[str, float]) -> None:
        """Give back what `take_unsynced` returned and could not be shared: it is shared with
        the next sync."""
        for tenant_id, seconds in taken.items():
            self._unsynced[tenant_id] = self._unsynced.get(tenant_id, 0.0) + seconds

    def adopt(self, shared: Mapping[str, float]) -> None:
        """Take the buckets every process shares as this process's own: `shared` holds the
        tenants whose shared bucket is not full, with what it holds now; any other tenant's is
        full. What this process charged since those were read (not yet shared) comes off."""
        if not self.seconds_per_minute:
            return
        now = self._clock()
        for tenant_id in set(self._buckets) | set(shared):
            seconds = shared.get(tenant_id, self.seconds_per_minute)
            seconds = min(seconds, self.seconds_per_minute) - self._unsynced.get(tenant_id, 0.0)
            if seconds < self.seconds_per_minute:
                self._buckets[tenant_id] = _Bucket(seconds, now)
            else:
                self._buckets.pop(tenant_id, None)

    def _top_up(self, bucket: _Bucket, now: float) -> None:
        elapsed = max(0.0, now - bucket.at)
        bucket.seconds = min(self.seconds_per_minute, bucket.seconds + elapsed * self._rate)
        bucket.at = now

    def _forget_full(self, now: float) -> None:
        for tenant_id, bucket in list(self._buckets.items()):
            self._top_up(bucket, now)
            if bucket.seconds >= self.seconds_per_minute:
                del self._buckets[tenant_id]

    def tracked(self) -> int:
        """How many tenants' buckets are kept (the others' are full)."""
        return len(self._buckets)


@dataclass
class _Slots:
    semaphore: asyncio.Semaphore
    users: int = 0
    """Holding or awaiting the semaphore."""


class TenantSlots:
    """At most `per_tenant` holders per tenant at a time; others of that tenant wait in turn;
    with a `budget`, a holder's time is charged to its tenant, and a tenant with none left is
    refused (`SearchBudgetSpent`) before it waits and again once its slot is free, or, for a
    holder that must not be refused, waits until its tenant's time is repaid.

    A tenant's semaphore lives only while someone holds or awaits it, so the map grows with
    the tenants searching at the moment, not with every tenant ever seen.
    """

    def __init__(
        self,
        per_tenant: int,
        budget: SearchBudget | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if per_tenant < 1:
            raise ValueError("per_tenant must be at least 1")
        self.per_tenant = per_tenant
        self.budget = budget if budget is not None else SearchBudget(0)
        self._clock = clock
        self._slots: dict[str, _Slots] = {}

    @contextlib.asynccontextmanager
    async def hold(
        self, tenant_id: str, *, refuse: bool = True, also: SearchBudget | None = None
    ) -> AsyncIterator[None]:
        """One of the tenant's slots, waited for if all are taken; its time charged to the
        tenant's budget, and to `also` (a budget of its own for this kind of request). With a
        budget spent: refused (`SearchBudgetSpent`), or with `refuse=False` (the later batches
        of an export already answering) waited out first, holding neither a slot nor a
        connection meanwhile: the export goes on at the pace of its tenant's budget instead of
        being cut short."""
        budgets = (self.budget,) if also is None else (self.budget, also)
        while True:
            for budget in budgets:
                if refuse:
                    budget.check(tenant_id)
                else:
                    await budget.repaid(tenant_id)
            slots = self._slots.get(tenant_id)
            if slots is None:
                slots = self._slots[tenant_id] = _Slots(asyncio.Semaphore(self.per_tenant))
            slots.users += 1
            try:
                async with slots.semaphore:
                    if all(budget.left(tenant_id) > 0 for budget in budgets):
                        started = self._clock()
                        try:
                            yield
                        finally:
                            for budget in budgets:
                                budget.charge(tenant_id, self._clock() - started)
                        return
                    if refuse:  # spent by the requests it waited behind
                        for budget in budgets:
                            budget.check(tenant_id)
            finally:
                slots.users -= 1
                if slots.users == 0:
                    del self._slots[tenant_id]

    def waiting(self, tenant_id: str) -> int:
        """How many of the tenant's callers hold or await a slot now."""
        slots = self._slots.get(tenant_id)
        return 0 if slots is None else slots.users


class TenantExports:
    """At most `per_tenant` CSV exports of one tenant streaming from this process at once;
    the next is refused (`ExportsBusy`, 429) rather than queued.

    An export without a text condition takes no search slot and spends no search budget: each
    batch is an index range read, cheap for the database, but every row costs the process
    about 24 microseconds to write out (100 s of a core for four million sessions). Unbounded,
    one tenant's admins could keep every core of the admin API busy with parallel exports
    while every other tenant's requests waited on the same event loops (a review,
    2026-12-06). Exports with a text condition are bounded by this too, besides their slots
    and budget. Refused, not queued: a queued export holds its client's request open for as
    long as the others take."""

    def __init__(self, per_tenant: int) -> None:
        if per_tenant < 1:
            raise ValueError("per_tenant must be at least 1")
        self.per_tenant = per_tenant
        self._open: dict[str, int] = {}

    def claim(self, tenant_id: str) -> Callable[[], None]:
        """One of the tenant's exports, or `ExportsBusy`; the function returned gives it
        back (once, however often it is called)."""
        streaming = self._open.get(tenant_id, 0)
        if streaming >= self.per_tenant:
            raise ExportsBusy(self.per_tenant)
        self._open[tenant_id] = streaming + 1
        given_back = False

        def release() -> None:
            nonlocal given_back
            if given_back:
                return
            given_back = True
            left = self._open[tenant_id] - 1
            if left:
                self._open[tenant_id] = left
            else:
                del self._open[tenant_id]

        return release

    def streaming(self, tenant_id: str) -> int:
        """How many of the tenant's exports stream now."""
        return self._open.get(tenant_id, 0)
