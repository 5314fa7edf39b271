"""The audit trail of termination requests, by time range and admin."""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from admin_api.adapters import terminations
from admin_api.adapters.session_listing import utc
from admin_api.entrypoints.dependencies import CurrentAdmin, DbSession
from admin_api.entrypoints.schemas import AuditEntry, AuditPage
from session_contracts.models import Timestamp

router = APIRouter(prefix="/api/v1/audit", tags=["audit"])


class AuditParams(BaseModel):
    """Which termination requests: `[since, until)`, one admin, a page."""

    model_config = ConfigDict(extra="forbid")

    since: Timestamp | None = Field(None, description="requested_at >= this (RFC 3339).")
    until: Timestamp | None = Field(None, description="requested_at < this.")
    requested_by: (
        Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^[^\x00]*$")]
        | None
    ) = Field(None, description="Only this admin's requests (their user id).")
    limit: int = Field(50, ge=1, le=500)
    cursor: Annotated[str, StringConstraints(max_length=512)] | None = None


def _encode(at: datetime, command_id: str) -> str:
    raw = json.dumps([at.isoformat(), command_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode(cursor: str) -> tuple[datetime, str]:
    try:
        at, command_id = json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
        when = datetime.fromisoformat(at)
        if when.tzinfo is None or not isinstance(command_id, str) or len(command_id) > 36:
            raise ValueError
        return utc(when), command_id
    except (binascii.Error, ValueError, TypeError, OverflowError, RecursionError):
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "cursor"),
                    "msg": "cursor: not a cursor this API issued",
                    "input": cursor,
                }
            ]
        ) from None


def _entry(row: dict[str, Any]) -> AuditEntry:
    applied = row["applied_at"] is not None
    return AuditEntry(
        command_id=row["command_id"],
        requested_by=row["requested_by"],
        requested_at=utc(row["requested_at"]),
        reason=row["reason"],
        target=row["target"],
        requested=row["requested"],
        status="applied" if applied else "pending",
        terminated=int(row["terminated"] or 0),
        applied_at=utc(row["applied_at"]) if applied else None,
    )


@router.get("/terminations", response_model=AuditPage)
async def termination_audit(
    admin: CurrentAdmin, db: DbSession, params: Annotated[AuditParams, Query()]
) -> AuditPage:
    """Every termination request of your tenant, newest first: who, when, what, how many ended."""
    query = terminations.AuditQuery(
        since=params.since,
        until=params.until,
        requested_by=params.requested_by,
        limit=params.limit,
        after=_decode(params.cursor) if params.cursor else None,
    )
    rows = await terminations.audit_page(db, admin.tenant_id, query)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    last = rows[-1] if more else None
    return AuditPage(
        items=[_entry(r) for r in rows],
        next_cursor=_encode(utc(last["requested_at"]), last["command_id"]) if last else None,
    )
