"""Terminating sessions: accept a request, publish the command, report its status."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, HTTPException, Path, status

from admin_api.adapters import terminations
from admin_api.entrypoints.dependencies import CurrentAdmin, DbSession, Now, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED, error_responses
from admin_api.entrypoints.schemas import (
    TerminationAccepted,
    TerminationRequest,
    TerminationStatus,
)
from read_model.unit_of_work import UnitOfWork
from session_contracts.models import TerminateSessions, as_utc

router = APIRouter(
    prefix="/api/v1/sessions/terminations", tags=["terminations"], responses=PROTECTED
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TerminationAccepted,
    responses=error_responses(400),
)
async def request_termination(
    admin: CurrentAdmin, runtime: RuntimeDep, now: Now, body: TerminationRequest
) -> TerminationAccepted:
    """End sessions by id (1-1000) or every active one matching a filter; 202 with a command id."""
    command = TerminateSessions(
        command_id=uuid.uuid4(),
        requested_at=now,
        tenant_id=admin.tenant_id,
        requested_by=admin.user_id,
        reason=body.reason,
        session_ids=body.session_ids,
        filter=body.filter,
    )
    # Recorded first, committed only once Kafka acknowledged: no request without its command.
    async with UnitOfWork(runtime.store) as uow:
        if body.filter is not None:
            requested = await runtime.store.count_active(
                uow.conn, body.filter, admin.tenant_id, now
            )
        else:
            requested = len(set(body.session_ids or ()))
        await terminations.record_request(uow.conn, command, requested)
        await runtime.bus.terminate(command)
    return TerminationAccepted(command_id=command.command_id, requested=requested)


@router.get("/{command_id}", response_model=TerminationStatus, responses=error_responses(404))
async def termination_status(
    admin: CurrentAdmin, db: DbSession, command_id: Annotated[uuid.UUID, Path()]
) -> TerminationStatus:
    """`pending` until the registry applied the command, then `applied` with how many it ended."""
    found = await terminations.request_status(db, admin.tenant_id, str(command_id))
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such termination request")
    return TerminationStatus(
        command_id=command_id,
        status=found.status,
        terminated=found.terminated,
        applied_at=as_utc(found.applied_at) if found.applied_at else None,
    )
