"""`SearchBudget`: one tenant's searches take at most their seconds a minute in a process.

The slots bound how many of a tenant's searches read at once, not for how long: two slots
kept busy by one tenant's admins held two of the database's cores for as long as they kept
sending searches that walk the tenant's rows. The budget charges each search the time it
held its slot, and refuses the tenant's next ones while it owes time, never another tenant's.
"""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from admin_api.domain.errors import SearchBudgetSpent
from admin_api.service_layer.tenant_slots import FORGET_ABOVE, SearchBudget, TenantSlots
from admin_api.settings import AdminApiSettings


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_tenant_that_spent_its_minute_is_refused_until_it_is_repaid() -> None:
    clock = Clock()
    budget = SearchBudget(6, clock)  # 6 s a minute: a tenth of a second back every second
    budget.check("acme")
    budget.charge("acme", 5)
    budget.check("acme")  # 1 s left: the next search may start
    budget.charge("acme", 3)  # and run to its end, past what was left

    with pytest.raises(SearchBudgetSpent) as refused:
        budget.check("acme")
    assert refused.value.retry_after == pytest.approx(20)  # 2 s owed at 0.1 s a second
    assert "6 s per minute" in str(refused.value) and "retry in 20 s" in str(refused.value)
    budget.check("globex")  # another tenant's searches are not charged for acme's

    clock.now += 19
    with pytest.raises(SearchBudgetSpent):
        budget.check("acme")
    clock.now += 1.5
    budget.check("acme")
    assert budget.left("acme") == pytest.approx(0.05)


def test_a_bucket_refills_to_one_minute_of_budget_and_no_more() -> None:
    clock = Clock()
    budget = SearchBudget(6, clock)
    budget.charge("acme", 1)
    clock.now += 3600  # an idle hour does not bank an hour of searching
    assert budget.left("acme") == 6
    budget.charge("acme", 7)
    with pytest.raises(SearchBudgetSpent):
        budget.check("acme")


def test_off_never_refuses() -> None:
    budget = SearchBudget(0, Clock())
    budget.charge("acme", 10_000)
    budget.check("acme")
    assert budget.tracked() == 0


def test_only_tenants_that_owe_or_are_refilling_are_kept() -> None:
    clock = Clock()
    budget = SearchBudget(60, clock)
    for n in range(FORGET_ABOVE):
        budget.charge(f"t{n}", 1)
    clock.now += 2  # every one of them is full again
    budget.charge("late", 30)
    assert budget.tracked() == 1
    assert budget.left("late") == 30 and budget.left("t0") == 60


async def test_a_search_that_waited_for_a_slot_is_refused_if_the_tenant_spent_meanwhile() -> None:
    clock = Clock()
    slots = TenantSlots(1, SearchBudget(6, clock), clock)
    reading = asyncio.Event()
    done = asyncio.Event()

    async def long_search() -> None:
        async with slots.hold("acme"):
            reading.set()
            await done.wait()
            clock.now += 10  # it read for 10 s: 4 s more than the minute's budget

    async def next_search() -> None:
        async with slots.hold("acme"):
            raise AssertionError("read although the tenant owed time")

    first = asyncio.create_task(long_search())
    await reading.wait()
    second = asyncio.create_task(next_search())  # allowed to wait: nothing owed yet
    await asyncio.sleep(0)
    assert slots.waiting("acme") == 2
    done.set()
    await first
    with pytest.raises(SearchBudgetSpent):
        await second
    assert slots.waiting("acme") == 0
    assert slots.budget.left("acme") == pytest.approx(-4)


async def test_an_exports_later_batches_wait_until_the_tenant_owes_nothing_then_are_charged() -> (
    None
):
    # an export answering 200 cannot be refused halfway: its later batches are paced by the
    # budget instead, so a tenant cannot start exports while it has time and read on for free
    clock = Clock()
    slept: list[float] = []
    waiting_held: list[int] = []

    async def sleep(seconds: float) -> None:
        waiting_held.append(slots.waiting("acme"))
        slept.append(seconds)
        clock.now += seconds

    slots = TenantSlots(2, SearchBudget(6, clock, sleep), clock)
    async with slots.hold("acme"):  # the export's first batch
        clock.now += 7  # 1 s more than the minute's budget
    with pytest.raises(SearchBudgetSpent):  # a new search is refused
        async with slots.hold("acme"):
            pass
    async with slots.hold("acme", refuse=False):  # the export's next batch: waits, then reads
        assert clock.now >= 1010  # 1 s owed at 0.1 s a second
        clock.now += 2
    assert slept and waiting_held == [0] * len(slept)  # no slot held while it waited
    assert slots.budget.left("acme") == pytest.approx(0.001 + 0.2 - 2)  # 0.2 back while read


async def test_an_export_waiting_for_its_tenants_time_does_not_hold_back_another_tenant() -> None:
    clock = Clock()
    budget = SearchBudget(6, clock)
    slots = TenantSlots(1, budget, clock)
    budget.charge("acme", 60)  # acme owes 54 s: about nine minutes at 0.1 s a second
    paced = asyncio.create_task(_read_once(slots, "acme", refuse=False))
    await asyncio.sleep(0.01)
    assert not paced.done() and slots.waiting("acme") == 0
    await _read_once(slots, "globex")  # globex's search is read at once
    paced.cancel()
    with pytest.raises(asyncio.CancelledError):
        await paced


async def _read_once(slots: TenantSlots, tenant_id: str, *, refuse: bool = True) -> None:
    async with slots.hold(tenant_id, refuse=refuse):
        pass


SETTINGS = {
    "SESSIONS_SEARCH_SECONDS_PER_MINUTE": ("search_seconds_per_minute", 30),
    "SESSIONS_FILTER_TERMINATION_SECONDS_PER_MINUTE": ("filter_termination_seconds_per_minute", 5),
}


@pytest.mark.parametrize("name", list(SETTINGS))
@pytest.mark.parametrize("value", ["-1", "3601", "nan", "inf", "-inf", "", "thirty"])
def test_an_out_of_range_budget_is_refused(
    name: str, value: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=SETTINGS[name][0]):
        AdminApiSettings(_env_file=None, environment="development")


@pytest.mark.parametrize("name", list(SETTINGS))
def test_a_budget_is_read_from_the_environment(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    field, default = SETTINGS[name]
    assert getattr(AdminApiSettings(_env_file=None, environment="development"), field) == default
    for value, expected in (("0", 0), ("2.5", 2.5), ("3600", 3600)):
        monkeypatch.setenv(name, value)
        settings = AdminApiSettings(_env_file=None, environment="development")
        assert getattr(settings, field) == expected


def test_what_a_process_charged_is_taken_once_and_given_back_if_it_was_not_shared() -> None:
    budget = SearchBudget(6, Clock())
    budget.charge("acme", 1)  # before it is shared: kept by no one
    budget.share()
    budget.charge("acme", 2)
    budget.charge("acme", 0.5)
    budget.charge("globex", 1)
    budget.charge("initech", -3)  # a clock stepping back charges nothing, and shares nothing
    taken = budget.take_unsynced()
    assert taken == {"acme": 2.5, "globex": 1}
    assert budget.take_unsynced() == {}  # taken once
    budget.charge("acme", 1)
    budget.restore(taken)  # the sync failed: shared with the next one, with what came since
    assert budget.take_unsynced() == {"acme": 3.5, "globex": 1}


def test_the_shared_buckets_become_this_process_s_less_what_it_charged_since() -> None:
    clock = Clock()
    budget = SearchBudget(6, clock)
    budget.share()
    budget.charge("acme", 1)
    budget.charge("globex", 5)
    budget.take_unsynced()  # shared: the other processes' figures now include these
    budget.charge("acme", 0.5)  # after the sync read the shared buckets

    # acme spent 4 s in all processes, hooli (never seen here) owes 2, globex's is full again
    budget.adopt({"acme": 2.0, "hooli": -2.0, "globex": 6.0})

    assert budget.left("acme") == pytest.approx(1.5)  # 2 shared, less the 0.5 since
    assert budget.left("globex") == 6 and budget.left("hooli") == -2
    with pytest.raises(SearchBudgetSpent) as refused:
        budget.check("hooli")  # refused here for what it spent through another process
    assert refused.value.retry_after == pytest.approx(20)
    assert budget.tracked() == 2  # globex's full bucket is dropped

    budget.adopt({})  # every shared bucket full: only what is not shared yet stays charged
    assert budget.left("acme") == pytest.approx(5.5) and budget.left("hooli") == 6
    clock.now += 5
    assert budget.left("acme") == 6


def test_an_off_budget_shares_nothing() -> None:
    budget = SearchBudget(0, Clock())
    budget.share()
    budget.charge("acme", 10)
    assert budget.take_unsynced() == {}
    budget.adopt({"acme": -100.0})
    budget.check("acme")


def test_a_budget_no_one_shares_keeps_nothing_for_a_sync() -> None:
    """Without sharing (`SESSIONS_SEARCH_BUDGET_SYNC_SECONDS=0`) nothing takes what was charged:
    keeping it would grow with every tenant ever seen."""
    budget = SearchBudget(6, Clock())
    for n in range(1000):
        budget.charge(f"t{n}", 1)
    assert budget.take_unsynced() == {}
