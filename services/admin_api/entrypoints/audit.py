"""The audit trail of termination requests, by time range and admin: the route (the work is
`service_layer.audit`)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request

from admin_api.entrypoints.dependencies import CurrentAdmin, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED
from admin_api.entrypoints.list_params import given_once
from admin_api.entrypoints.schemas import AuditEntry, AuditPage
from admin_api.service_layer import audit
from admin_api.service_layer.audit import AuditParams
from session_contracts.models import as_utc

router = APIRouter(prefix="/api/v1/audit", tags=["audit"], responses=PROTECTED)


def _entry(row: dict[str, Any]) -> AuditEntry:
    return AuditEntry(
        command_id=row["command_id"],
        requested_by=row["requested_by"],
        requested_at=as_utc(row["requested_at"]),
        reason=row["reason"],
        target=row["target"],
        requested=row["requested"],
        status=row["status"],
        terminated=int(row["terminated"] or 0),
        applied_at=row["applied_at"],  # in UTC: `adapters.terminations.audit_page`
        failed_at=row["failed_at"],
    )


_audit_once = given_once(AuditParams)


@router.get("/terminations", response_model=AuditPage)
async def termination_audit(
    request: Request,
    admin: CurrentAdmin,
    runtime: RuntimeDep,
    params: Annotated[AuditParams, Query()],
) -> AuditPage:
    """Every termination request of your tenant, newest first: who, when, what, how many ended."""
    _audit_once(request)
    page = await audit.termination_audit(params, admin, runtime.store, runtime.cursors)
    return AuditPage(items=[_entry(r) for r in page.rows], next_cursor=page.next_cursor)
