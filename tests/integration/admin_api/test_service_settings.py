"""The session-settings use cases without HTTP: read, change and publish, tenant scoping, a bus
that is down; on both backends."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from typing import Any

import pytest
from admin_api_support import NOW, OTHER_TENANT, TENANT, RecordingBus
from sqlalchemy import insert, select

from admin_api.adapters.bus import BusUnavailable
from admin_api.auth import EDIT_USER_SESSIONS, Admin
from admin_api.domain.policies import PolicyChange
from admin_api.service_layer.session_settings import (
    ChangeSettings,
    change_settings,
    read_settings,
)
from read_model.session_query import policy_outdated
from read_model.store import Store
from read_model.tables import session_settings_history, sessions
from session_contracts.models import DEFAULT_POLICIES, SessionPolicy, as_utc

ADMIN = Admin("admin-1", TENANT, frozenset({EDIT_USER_SESSIONS}))
OTHER_ADMIN = Admin("admin-9", OTHER_TENANT, frozenset({EDIT_USER_SESSIONS}))
OTHER_TYPE_ADMIN = Admin("admin-2", TENANT, frozenset({EDIT_USER_SESSIONS}))
DAY_LONG = PolicyChange(max_session_seconds=86400, idle_timeout_seconds=3600)


def clock() -> datetime:
    return NOW


async def test_a_change_is_stored_and_the_tenants_full_settings_published(
    store: Store, bus: RecordingBus
) -> None:
    assert await read_settings(ADMIN, store) == {}  # defaults apply

    stored = await change_settings(ChangeSettings("browser", DAY_LONG), ADMIN, store, bus, clock)

    assert set(stored) == {"browser"}
    assert stored["browser"].policy == SessionPolicy(
        max_session_seconds=86400, idle_timeout_seconds=3600
    )
    assert stored["browser"].updated_by == "admin-1"
    assert stored == await read_settings(ADMIN, store)
    (record,) = bus.settings
    assert record.tenant_id == TENANT and record.changed_by == "admin-1"
    assert record.occurred_at == NOW
    assert record.settings == {"browser": DAY_LONG.policy(), "mobile": DEFAULT_POLICIES["mobile"]}
    assert await read_settings(OTHER_ADMIN, store) == {}


async def test_the_last_change_wins_and_each_is_published(store: Store, bus: RecordingBus) -> None:
    later = PolicyChange(max_session_seconds=2 * 86400, idle_timeout_seconds=3600)
    await change_settings(ChangeSettings("mobile", DAY_LONG), ADMIN, store, bus, clock)
    stored = await change_settings(
        ChangeSettings("mobile", later), ADMIN, store, bus, lambda: NOW + timedelta(minutes=1)
    )
    assert stored["mobile"].policy == later.policy()
    assert [r.settings["mobile"] for r in bus.settings] == [DAY_LONG.policy(), later.policy()]
    assert bus.settings[-1].settings["browser"] == DEFAULT_POLICIES["browser"]


async def test_a_bus_that_is_down_leaves_the_settings_as_they_were(
    store: Store, bus: RecordingBus
) -> None:
    async def refuse(record: object) -> None:
        raise BusUnavailable("broker down")

    bus.settings_changed = refuse  # type: ignore[method-assign]
    with pytest.raises(BusUnavailable):
        await change_settings(ChangeSettings("browser", DAY_LONG), ADMIN, store, bus, clock)
    assert await read_settings(ADMIN, store) == {}


async def test_a_change_is_stamped_once_kafka_has_it(store: Store, bus: RecordingBus) -> None:
    """A termination by `policy_outdated` compares with the settings in force at its confirmed
    count: a change stamped before an ack that took a while, and committed after a count read
    meanwhile, was in force at that count without the count seeing it (found by a review,
    2026-12-06). The change is stamped, and written, after the ack."""
    ticks = iter(NOW + timedelta(seconds=n) for n in range(10))

    def ticking() -> datetime:
        return next(ticks)

    acked: list[datetime] = []

    class SlowBus(RecordingBus):
        async def settings_changed(self, record: Any) -> None:
            acked.append(ticking())  # the moment Kafka answers
            await super().settings_changed(record)

    slow = SlowBus()
    stored = await change_settings(ChangeSettings("browser", DAY_LONG), ADMIN, store, slow, ticking)
    (record,) = slow.settings
    written = as_utc(stored["browser"].updated_at)
    assert record.occurred_at < acked[0] < written
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(session_settings_history))).all()
    assert [(r.session_type, as_utc(r.since)) for r in rows] == [("browser", written)]


async def test_two_changes_at_once_each_publish_the_other(store: Store) -> None:
    """The record carries all of a tenant's settings. Two admins changing two types at once on
    PostgreSQL each read the settings before the other's commit, so each record carried the
    other type as it was, and the later one undid the earlier change for login services while
    the database kept both. One change of a tenant's settings at a time now."""
    entered, release = asyncio.Event(), asyncio.Event()

    class HeldBus(RecordingBus):
        async def settings_changed(self, record: Any) -> None:
            entered.set()
            await release.wait()  # the first change waits here for Kafka's answer
            await super().settings_changed(record)

    bus = HeldBus()
    first = asyncio.create_task(
        change_settings(ChangeSettings("browser", DAY_LONG), ADMIN, store, bus, clock)
    )
    await entered.wait()
    longer = PolicyChange(max_session_seconds=2 * 86400, idle_timeout_seconds=7200)
    second = asyncio.create_task(
        change_settings(ChangeSettings("mobile", longer), OTHER_TYPE_ADMIN, store, bus, clock)
    )
    await asyncio.sleep(0.2)  # time for the second to read the settings, were it let
    release.set()
    await asyncio.gather(first, second)
    assert [record.changed_by for record in bus.settings] == ["admin-1", "admin-2"]
    assert bus.settings[-1].settings == {"browser": DAY_LONG.policy(), "mobile": longer.policy()}


async def test_a_change_from_a_host_whose_clock_is_behind_is_in_force_at_its_own_counts(
    store: Store,
) -> None:
    """Host A's clock runs 10 s ahead, host B's is right. A changes the browser settings, then
    B changes them again, and a session is created under B's. A count B reads right after
    must not find that session outdated. Stamping B's change after A's (tried on 2026-12-06 to
    keep the history in commit order) made the current settings count only from A's clock,
    and the session was outdated at B's count (found by a review)."""
    one = PolicyChange(max_session_seconds=86400, idle_timeout_seconds=3600)
    two = PolicyChange(max_session_seconds=2 * 86400, idle_timeout_seconds=7200)
    ahead, right = NOW + timedelta(seconds=11), NOW + timedelta(seconds=2)
    await change_settings(
        ChangeSettings("browser", one), ADMIN, store, RecordingBus(), lambda: ahead
    )
    await change_settings(
        ChangeSettings("browser", two), ADMIN, store, RecordingBus(), lambda: right
    )
    created = NOW + timedelta(seconds=3)
    async with store.engine.begin() as conn:
        await conn.execute(
            insert(sessions).values(
                tenant_id=TENANT,
                session_id="under-two",
                session_type="browser",
                max_session_seconds=two.max_session_seconds,
                idle_timeout_seconds=two.idle_timeout_seconds,
                created_at=created,
                last_activity_at=created,
                expires_at=created + timedelta(hours=2),
                state="open",
            )
        )
    async with store.engine.connect() as conn:
        for counted_at in (NOW + timedelta(seconds=5), NOW + timedelta(seconds=12)):
            outdated = (await conn.execute(select(policy_outdated(counted_at)))).scalar_one()
            assert not outdated, counted_at
