"""The termination use cases without HTTP: by ids and by filter, the published command and the
recorded request, tenant scoping, a bus that is down, the status; on both backends."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import pytest
from admin_api_support import (
    NOW,
    OTHER_TENANT,
    TENANT,
    RecordingBus,
    handle,
    insert,
    session_row,
)

from admin_api.adapters.bus import BusUnavailable
from admin_api.auth import EDIT_USER_SESSIONS, Admin
from admin_api.domain.cursors import CursorCodec
from admin_api.domain.errors import NotFound
from admin_api.service_layer.audit import AuditParams, termination_audit
from admin_api.service_layer.terminations import (
    RequestTermination,
    request_termination,
    termination_status,
)
from read_model.store import Store
from read_model.tables import applied_commands
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import (
    SessionFilter,
    SessionType,
    TerminateSessions,
    TerminationReason,
)
from session_contracts.topics import Topics
from session_registry.adapters.command_store import defer, record_applied
from session_registry.service_layer.deferred_terminations import DeferredTerminations

ADMIN = Admin("admin-1", TENANT, frozenset({EDIT_USER_SESSIONS}))
OTHER_ADMIN = Admin("admin-9", OTHER_TENANT, frozenset({EDIT_USER_SESSIONS}))
CURSORS = CursorCodec(b"k" * 32)
A, B = handle("a"), handle("b")


def clock() -> datetime:
    return NOW


async def recorded(store: Store, admin: Admin = ADMIN) -> list[dict[str, object]]:
    """The admin's tenant's recorded requests, newest first (the audit's rows)."""
    return (await termination_audit(AuditParams(), admin, store, CURSORS)).rows


async def test_by_ids_publishes_the_command_and_records_the_request(
    store: Store, bus: RecordingBus
) -> None:
    request = RequestTermination(session_ids=[A, B, A], reason=TerminationReason.security)
    accepted = await request_termination(request, ADMIN, store, bus, clock)

    assert accepted.requested == 2  # distinct ids
    (command,) = bus.commands
    assert command.command_id == accepted.command_id
    assert command.session_ids == [A, B, A] and command.filter is None
    assert command.tenant_id == TENANT and command.requested_by == "admin-1"
    assert command.requested_at == NOW and command.reason == TerminationReason.security
    (row,) = await recorded(store)
    assert row["command_id"] == str(accepted.command_id)
    assert row["target"] == {"session_ids": [A, B, A]} and row["requested"] == 2
    assert row["reason"] == "security" and row["requested_by"] == "admin-1"


async def test_by_filter_counts_the_tenants_active_matches_only(
    store: Store, bus: RecordingBus
) -> None:
    await insert(
        store.engine,
        [
            *(session_row(session_type="mobile") for _ in range(3)),
            session_row(session_type="browser"),
            session_row(session_type="mobile", tenant_id=OTHER_TENANT),
            session_row(session_type="mobile", expires_at=NOW - timedelta(seconds=1)),
            session_row(session_type="mobile", state="terminated", ended_at=NOW),
        ],
    )
    only_mobile = SessionFilter(session_type=[SessionType.mobile])
    accepted = await request_termination(
        RequestTermination(filter=only_mobile), ADMIN, store, bus, clock
    )

    assert accepted.requested == 3
    (command,) = bus.commands
    assert command.filter == only_mobile and command.session_ids is None
    assert command.reason == TerminationReason.admin and command.tenant_id == TENANT
    (row,) = await recorded(store)
    assert row["target"] == {"filter": {"session_type": ["mobile"]}}
    other = await request_termination(
        RequestTermination(filter=only_mobile), OTHER_ADMIN, store, bus, clock
    )
    assert other.requested == 1 and bus.commands[-1].tenant_id == OTHER_TENANT
    assert len(await recorded(store)) == 1  # each tenant sees its own requests


async def test_the_confirmed_count_is_binding(store: Store, bus: RecordingBus) -> None:
    # The admin confirmed a count read at `confirmed`; one session was created after it.
    confirmed = NOW - timedelta(minutes=2)
    await insert(
        store.engine,
        [
            session_row(created_at=confirmed - timedelta(hours=1)),
            session_row(created_at=confirmed),  # at the moment itself: counted
            session_row(created_at=confirmed + timedelta(microseconds=1)),
            session_row(created_at=NOW - timedelta(seconds=1)),
        ],
    )
    accepted = await request_termination(
        RequestTermination(filter=SessionFilter(), confirmed_at=confirmed), ADMIN, store, bus, clock
    )
    assert accepted.requested == 2
    (command,) = bus.commands
    assert command.confirmed_at == confirmed and command.requested_at == NOW
    # without confirmed_at, the moment of acceptance; a moment after it is taken as it
    for given in (None, NOW + timedelta(minutes=5)):
        later = await request_termination(
            RequestTermination(filter=SessionFilter(), confirmed_at=given), ADMIN, store, bus, clock
        )
        assert later.requested == 4 and bus.commands[-1].confirmed_at == NOW
    # a narrower created_to of the admin's filter stays
    narrow = SessionFilter(created_to=confirmed - timedelta(minutes=1))
    await request_termination(
        RequestTermination(filter=narrow, confirmed_at=confirmed), ADMIN, store, bus, clock
    )
    assert bus.commands[-1].filter == narrow


async def test_a_repeated_request_is_a_new_command(store: Store, bus: RecordingBus) -> None:
    # No idempotency key: the API answers each POST with a command of its own (the registry
    # ends a session once however many commands name it).
    request = RequestTermination(session_ids=[A])
    first = await request_termination(request, ADMIN, store, bus, clock)
    second = await request_termination(request, ADMIN, store, bus, clock)
    assert first.command_id != second.command_id
    assert [c.command_id for c in bus.commands] == [first.command_id, second.command_id]
    assert len(await recorded(store)) == 2


async def test_a_bus_that_is_down_leaves_nothing_recorded(store: Store, bus: RecordingBus) -> None:
    async def refuse(command: object) -> None:
        raise BusUnavailable("broker down")

    bus.terminate = refuse  # type: ignore[method-assign]
    await insert(store.engine, [session_row()])
    for request in (
        RequestTermination(session_ids=[A]),
        RequestTermination(filter=SessionFilter()),
    ):
        with pytest.raises(BusUnavailable):
            await request_termination(request, ADMIN, store, bus, clock)
    assert await recorded(store) == []


async def test_status_is_pending_then_applied_and_only_in_the_tenant(
    store: Store, bus: RecordingBus
) -> None:
    accepted = await request_termination(
        RequestTermination(session_ids=[A]), ADMIN, store, bus, clock
    )
    pending = await termination_status(accepted.command_id, ADMIN, store)
    assert (pending.status, pending.terminated, pending.applied_at) == ("pending", 0, None)

    applied_at = NOW + timedelta(seconds=1)
    async with store.engine.begin() as conn:
        await conn.execute(
            applied_commands.insert().values(
                command_id=str(accepted.command_id),
                tenant_id=TENANT,
                requested_by="admin-1",
                requested_at=NOW,
                applied_at=applied_at,
                reason="admin",
                target={"session_ids": [A]},
                terminated=1,
            )
        )
    applied = await termination_status(accepted.command_id, ADMIN, store)
    assert (applied.status, applied.terminated, applied.applied_at) == ("applied", 1, applied_at)
    assert applied.applied_at is not None and applied.applied_at.tzinfo is not None

    for admin, command_id in ((OTHER_ADMIN, accepted.command_id), (ADMIN, uuid.uuid4())):
        with pytest.raises(NotFound, match="no such termination request"):
            await termination_status(command_id, admin, store)


async def test_a_termination_by_a_text_filter_counts_up_while_pending(
    store: Store, bus: RecordingBus
) -> None:
    """The registry applies it in chunks beside its loop: the status and the audit say how many
    it ended so far, then, applied, how many in all."""
    await insert(store.engine, [session_row(user_name="Ann Example") for _ in range(6)])
    await insert(store.engine, [session_row(user_name="Bob Example") for _ in range(2)])
    accepted = await request_termination(
        RequestTermination(filter=SessionFilter(user_name="ann")), ADMIN, store, bus, clock
    )
    (command,) = bus.commands
    async with UnitOfWork(store) as uow:  # the registry takes it from the topic
        await defer(uow, command, (0, 7), NOW)
    chunks = 0

    async def one_chunk_then_stop() -> None:
        nonlocal chunks
        chunks += 1
        raise ConnectionError("the registry stopped after its first chunk")

    resolver = DeferredTerminations(
        store, Topics(), clock=clock, chunk=4, after_chunk=one_chunk_then_stop
    )
    with pytest.raises(ConnectionError):
        await resolver.resolve_all()
    status = await termination_status(accepted.command_id, ADMIN, store)
    assert (status.status, status.terminated, status.applied_at) == ("pending", 4, None)
    audit = await termination_audit(AuditParams(), ADMIN, store, CURSORS)
    assert [(r["applied_at"], r["terminated"]) for r in audit.rows] == [(None, 4)]

    await DeferredTerminations(store, Topics(), clock=clock, chunk=4).resolve_all()
    status = await termination_status(accepted.command_id, ADMIN, store)
    assert (status.status, status.terminated) == ("applied", 6)


async def test_a_command_the_registry_applied_before_the_record_keeps_the_confirmed_count(
    store: Store, bus: RecordingBus
) -> None:
    # The registry receives a command within milliseconds of Kafka's ack, and records the
    # request itself when it finds none (requested = what it ended, for a filter). The admin
    # API's record lands after that: no conflict, and the count the admin confirmed wins.
    await insert(store.engine, [session_row(session_type="mobile") for _ in range(3)])
    terminate = bus.terminate

    async def applied_at_once(command: TerminateSessions) -> None:
        await terminate(command)
        async with UnitOfWork(store) as uow:
            await record_applied(uow, command, NOW, terminated=2)  # one ended meanwhile

    bus.terminate = applied_at_once  # type: ignore[method-assign]
    accepted = await request_termination(
        RequestTermination(filter=SessionFilter(), confirmed_at=NOW), ADMIN, store, bus, clock
    )
    assert accepted.requested == 3
    (row,) = await recorded(store)
    assert row["command_id"] == str(accepted.command_id) and row["requested"] == 3
    status = await termination_status(accepted.command_id, ADMIN, store)
    assert (status.status, status.terminated) == ("applied", 2)
