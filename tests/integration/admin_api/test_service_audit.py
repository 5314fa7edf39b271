"""The audit use case without HTTP: newest first, by time range and admin, keyset pages with
cursors for their range only, each tenant its own trail; on both backends."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from admin_api_support import NOW, OTHER_TENANT, TENANT, RecordingBus, handle

from admin_api.auth import EDIT_USER_SESSIONS, Admin
from admin_api.domain.cursors import CursorCodec
from admin_api.domain.errors import InvalidParameter
from admin_api.service_layer.audit import AuditParams, termination_audit
from admin_api.service_layer.terminations import RequestTermination, request_termination
from read_model.store import Store

CURSORS = CursorCodec(b"k" * 32)
THEIRS = handle("x", OTHER_TENANT)


def admin(user_id: str, tenant: str = TENANT) -> Admin:
    return Admin(user_id, tenant, frozenset({EDIT_USER_SESSIONS}))


def at_time(moment: datetime) -> Callable[[], datetime]:
    return lambda: moment


async def requests(store: Store, bus: RecordingBus) -> list[tuple[str, datetime, str]]:
    """Five requests of TENANT a minute apart and one of OTHER_TENANT: (admin, time, command)."""
    made = []
    for minute, who in enumerate(("alice", "bob", "alice", "carol", "alice")):
        at = NOW + timedelta(minutes=minute)
        request = RequestTermination(session_ids=[handle(f"s-{minute}")])
        accepted = await request_termination(request, admin(who), store, bus, at_time(at))
        made.append((who, at, str(accepted.command_id)))
    await request_termination(
        RequestTermination(session_ids=[THEIRS]),
        admin("zoe", OTHER_TENANT),
        store,
        bus,
        at_time(NOW),
    )
    return made


async def test_pages_newest_first_by_admin_and_time_range(store: Store, bus: RecordingBus) -> None:
    made = await requests(store, bus)
    alice = [command for who, _, command in reversed(made) if who == "alice"]
    seen: list[str] = []
    params = AuditParams(requested_by="alice", limit=2)
    while True:
        page = await termination_audit(params, admin("bob"), store, CURSORS)
        seen += [row["command_id"] for row in page.rows]
        assert all(row["requested_by"] == "alice" for row in page.rows)
        if page.next_cursor is None:
            break
        params = AuditParams(requested_by="alice", limit=2, cursor=page.next_cursor)
    assert seen == alice

    window = AuditParams(since=NOW + timedelta(minutes=1), until=NOW + timedelta(minutes=3))
    rows = (await termination_audit(window, admin("bob"), store, CURSORS)).rows
    assert [row["command_id"] for row in rows] == [made[2][2], made[1][2]]
    theirs = (
        await termination_audit(AuditParams(), admin("zoe", OTHER_TENANT), store, CURSORS)
    ).rows
    assert [row["requested_by"] for row in theirs] == ["zoe"]
    assert theirs[0]["target"] == {"session_ids": [THEIRS]} and theirs[0]["applied_at"] is None


async def test_a_cursor_only_for_the_tenant_and_range_it_was_issued_for(
    store: Store, bus: RecordingBus
) -> None:
    await requests(store, bus)
    first = await termination_audit(AuditParams(limit=1), admin("bob"), store, CURSORS)
    assert first.next_cursor is not None
    elsewhere = [
        (AuditParams(limit=1, cursor=first.next_cursor), admin("zoe", OTHER_TENANT)),
        (AuditParams(limit=1, requested_by="alice", cursor=first.next_cursor), admin("bob")),
        (AuditParams(limit=1, since=NOW, cursor=first.next_cursor), admin("bob")),
        (AuditParams(limit=1, cursor="garbage"), admin("bob")),
    ]
    for params, who in elsewhere:
        with pytest.raises(InvalidParameter) as refused:
            await termination_audit(params, who, store, CURSORS)
        assert refused.value.field == "cursor" and refused.value.value == params.cursor
