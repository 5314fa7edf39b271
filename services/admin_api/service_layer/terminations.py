"""Ending sessions: accept a request (record it, publish its command), report where it stands."""

from __future__ import annotations

import contextlib
import json
import logging
import uuid
from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime, timedelta

from opentelemetry.trace import SpanKind
from sqlalchemy.exc import SQLAlchemyError

from admin_api.adapters import terminations
from admin_api.adapters.bus import BusUnavailable, CommandBus
from admin_api.auth import Admin
from admin_api.domain.errors import NotFound, OutcomeUnknown
from admin_api.runtime import Clock
from admin_api.service_layer.tenant_slots import SearchBudget, TenantSlots
from read_model.session_query import may_walk
from read_model.store import Store
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import SessionFilter, TerminateSessions, TerminationReason
from session_contracts.tracing import tracer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RequestTermination:
    """End these sessions: explicit `session_ids`, or every active one matching `filter`."""

    session_ids: Sequence[str] | None = None
    filter: SessionFilter | None = None
    reason: TerminationReason = TerminationReason.admin
    confirmed_at: datetime | None = None
    """With a filter: the moment of the count the admin confirmed (default: acceptance)."""
    idempotency_key: str | None = None
    """The client's name for this request (`Idempotency-Key`): see `command_id_of`."""


COMMAND_IDS = uuid.UUID("6f1f3c2e-8d0a-5b7e-9c4d-2a1e0b7f5d93")
"""The namespace of the command ids named by an idempotency key (uuid5)."""


def command_id_of(request: RequestTermination, admin: Admin) -> uuid.UUID:
    """A random command id; with an idempotency key, the one that key names for this admin and
    this request. A request sent again with its key (a 503, or an answer lost) is then the same
    command: Kafka may hold it twice, and the registry applies a (tenant, command id) once, so
    the sessions are ended once and its status is the one request's. Nothing is stored per key:
    another body under the same key names another command (never a silently ignored one), and
    another admin's or tenant's key names its own. The filter is named by the fields it gives
    (not its defaults: a field a later release adds does not rename it)."""
    if request.idempotency_key is None:
        return uuid.uuid4()
    named = {
        "tenant_id": admin.tenant_id,
        "requested_by": admin.user_id,
        "key": request.idempotency_key,
        "session_ids": None if request.session_ids is None else list(request.session_ids),
        "filter": None
        if request.filter is None
        else request.filter.model_dump(mode="json", exclude_defaults=True),
        "reason": request.reason.value,
        "confirmed_at": None if request.confirmed_at is None else request.confirmed_at.isoformat(),
    }
    return uuid.uuid5(COMMAND_IDS, json.dumps(named, sort_keys=True, separators=(",", ":")))


def created_no_later_than(filter: SessionFilter, moment: datetime) -> SessionFilter:
    """`filter` narrowed to sessions created at or before `moment` (what the registry ends).

    `created_to` is exclusive; stored times have microsecond precision, so `< moment + 1 us`
    is `<= moment`.
    """
    bound = moment + timedelta(microseconds=1)
    if filter.created_to is not None and filter.created_to <= bound:
        return filter
    return filter.model_copy(update={"created_to": bound})


@dataclass(frozen=True)
class Accepted:
    """The command on its way to the registry, and how many sessions it asks to end."""

    command_id: uuid.UUID
    requested: int
    """Distinct ids given, or the active sessions matching the filter when accepted."""


async def request_termination(
    request: RequestTermination,
    admin: Admin,
    store: Store,
    bus: CommandBus,
    clock: Clock,
    searches: TenantSlots | None = None,
    filter_terminations: SearchBudget | None = None,
) -> Accepted:
    """Publish the command to the admin's tenant, then record the request.

    A filter with a text condition is counted as a search is read: in one of the tenant's
    `searches` slots, its time charged to the tenant's budget, and refused
    (`SearchBudgetSpent`, nothing published) while the tenant owes time. The registry resolves
    the same filter when it applies the command, inside the transaction every tenant's events
    wait behind, so the count's time is charged to `filter_terminations` too, a smaller budget
    of the tenant's own: it bounds how much of the registry's time one tenant can take this way
    (the count costs about what the registry's resolution will).

    Recorded only once Kafka acknowledged the command: no request without its command, and a
    bus that is down (`BusUnavailable`) leaves nothing recorded. A crash (or a database that
    fails) between the ack and the record leaves the command without its request, as a crash
    between the ack and the commit of one transaction would: the registry applies it all the
    same. A database that fails there is `OutcomeUnknown` (a 503 that says the change may be
    applied, never "nothing was changed"), and the admin asks again, with the same
    `Idempotency-Key` the same command (terminating a session twice ends it once).
    """
    command_id = command_id_of(request, admin)
    if request.idempotency_key is not None:
        # sent again with its key: once recorded (its 202 lost, or its command applied after a
        # 503), it is answered as recorded, neither counted again (the count would be what the
        # command left, or later sessions it will not end) nor published again (a command the
        # registry gave up is redriven by an operator, not by a retry)
        async with store.engine.connect() as conn:
            known = await terminations.recorded_count(conn, admin.tenant_id, str(command_id))
        if known is not None:
            return Accepted(command_id=command_id, requested=known)
    now = clock()
    confirmed_at = None
    if request.filter is not None:
        # a moment after acceptance (another worker's clock) is acceptance itself
        confirmed_at = now if request.confirmed_at is None else min(request.confirmed_at, now)
    command = TerminateSessions(
        command_id=command_id,
        requested_at=now,
        tenant_id=admin.tenant_id,
        requested_by=admin.user_id,
        reason=request.reason,
        session_ids=None if request.session_ids is None else list(request.session_ids),
        filter=request.filter,
        confirmed_at=confirmed_at,
    )
    # The trace of a termination starts here; the command carries it to the registry.
    with tracer().start_as_current_span(
        "admin_api.request_termination",
        kind=SpanKind.PRODUCER,
        attributes={"tenant_id": command.tenant_id, "command_id": str(command.command_id)},
    ):
        if command.filter is not None and confirmed_at is not None:
            bounded = created_no_later_than(command.filter, confirmed_at)
            held: AbstractAsyncContextManager[None] = contextlib.nullcontext()
            if searches is not None and may_walk(bounded):
                held = searches.hold(admin.tenant_id, also=filter_terminations)
            async with held, store.engine.connect() as conn, conn.begin():  # a read: no lock
                requested = await store.count_active(
                    conn, bounded, admin.tenant_id, now, policies_at=confirmed_at
                )
        else:
            requested = len(set(command.session_ids or ()))
        named = {"tenant_id": command.tenant_id, "command_id": str(command.command_id)}
        try:
            await bus.terminate(command)
        except BusUnavailable as exc:
            if not exc.maybe_written:
                raise  # refused before it was written: nothing was changed
            raise OutcomeUnknown(
                f"the command bus (Kafka) did not acknowledge command {command.command_id} (no "
                "answer in time, or the connection lost); the change may still be applied: retry "
                "(with the same Idempotency-Key it is the same command; a session ended twice is "
                "ended once)",
                named,
            ) from exc
        # Recorded once Kafka has the command, in a write transaction of its own: on SQLite
        # (one writer) a lock held across the ack would stall the registry, which receives
        # the command within milliseconds and must write to apply it. Not `run` (retried):
        # a retry after a commit whose answer was lost would record the request twice.
        try:
            async with UnitOfWork(store) as uow:
                await terminations.record_request(uow, command, requested)
        except (SQLAlchemyError, OSError) as exc:  # the database (a bug is a 500, as ever)
            # the command is out: "nothing was changed" would be false
            raise OutcomeUnknown(
                f"command {command.command_id} was published and the registry will apply it, "
                "but recording the request failed (the session database); retry with the same "
                "Idempotency-Key (the same command), or follow it by its id",
                named,
            ) from exc
    log.info(
        "termination requested for %d session(s)",
        requested,
        extra={"tenant_id": command.tenant_id, "command_id": str(command.command_id)},
    )
    return Accepted(command_id=command.command_id, requested=requested)


async def termination_status(
    command_id: uuid.UUID, admin: Admin, store: Store
) -> terminations.RequestStatus:
    """Where one of the tenant's requests stands; NotFound for any other command id."""
    async with store.engine.connect() as conn:
        found = await terminations.request_status(conn, admin.tenant_id, str(command_id))
    if found is None:
        raise NotFound("no such termination request")
    return found
