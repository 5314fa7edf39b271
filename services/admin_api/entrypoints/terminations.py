"""Terminating sessions: the routes that accept a request and report its status (the work is
`service_layer.terminations`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, status

from admin_api.entrypoints.dependencies import CurrentAdmin, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED, error_responses, invalid_input
from admin_api.entrypoints.schemas import (
    TerminationAccepted,
    TerminationRequest,
    TerminationStatus,
)
from admin_api.entrypoints.strict_json import StrictJsonRoute
from admin_api.service_layer import terminations

router = APIRouter(
    prefix="/api/v1/sessions/terminations",
    tags=["terminations"],
    responses=PROTECTED,
    route_class=StrictJsonRoute,  # a body repeating a key: 422
)


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=TerminationAccepted,
    responses=error_responses(400, 429),
)
async def request_termination(
    http: Request,
    admin: CurrentAdmin,
    runtime: RuntimeDep,
    body: TerminationRequest,
    idempotency_key: Annotated[
        str | None,
        Header(
            alias="Idempotency-Key",
            pattern=r"^[!-~]{1,255}$",
            description="Any 1-255 visible ASCII characters naming this request: sent again "
            "with the same key and the same body (by the same admin), it is the same command, "
            "with the same command id, ended once, however often a 503 or a lost answer made the "
            "client retry. Another body under the same key is another command.",
        ),
    ] = None,
) -> TerminationAccepted:
    """End sessions by id (1-1000) or every active one matching a filter; 202 with a command id."""
    keys = http.headers.getlist("idempotency-key")
    if len(keys) > 1:  # FastAPI would take the first silently; a proxy, the last
        raise invalid_input(
            "header", ("Idempotency-Key", f"given {len(keys)} times: it takes one value", keys)
        )
    request = terminations.RequestTermination(
        session_ids=body.session_ids,
        filter=body.filter,
        reason=body.reason,
        confirmed_at=body.confirmed_at,
        idempotency_key=idempotency_key,
    )
    accepted = await terminations.request_termination(
        request,
        admin,
        runtime.store,
        runtime.bus,
        runtime.clock,
        runtime.searches,
        runtime.filter_terminations,
    )
    return TerminationAccepted(command_id=accepted.command_id, requested=accepted.requested)


@router.get("/{command_id}", response_model=TerminationStatus, responses=error_responses(404))
async def termination_status(
    admin: CurrentAdmin, runtime: RuntimeDep, command_id: Annotated[uuid.UUID, Path()]
) -> TerminationStatus:
    """`pending` until the registry applied the command, then `applied` with how many it ended;
    `failed` if the registry gave it up (an operator can redrive it)."""
    found = await terminations.termination_status(command_id, admin, runtime.store)
    return TerminationStatus(
        command_id=command_id,
        status=found.status,
        terminated=found.terminated,
        applied_at=found.applied_at,
        failed_at=found.failed_at,
    )
