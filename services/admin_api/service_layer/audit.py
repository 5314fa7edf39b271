"""The audit trail of termination requests: a time range, an admin, keyset pages newest first."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from admin_api.adapters import terminations
from admin_api.auth import Admin
from admin_api.domain.cursors import NOT_OURS, BadCursor, CursorCodec
from admin_api.domain.errors import InvalidParameter
from read_model.store import Store
from session_contracts.models import Timestamp, as_utc


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


@dataclass(frozen=True)
class AuditRows:
    """Up to `limit` requests newest first, with what came of each, and the next page's cursor."""

    rows: list[dict[str, Any]]
    next_cursor: str | None


def _scope(tenant_id: str, params: AuditParams) -> dict[str, Any]:
    """What an audit cursor is valid for: this tenant's audit with this time range and admin."""
    conditions = params.model_dump(mode="json", include={"since", "until", "requested_by"})
    return {"list": "audit", "tenant": tenant_id, **conditions}


def _encode(codec: CursorCodec, scope: dict[str, Any], at: datetime, command_id: str) -> str:
    return codec.seal(scope, {"at": at.isoformat(), "id": command_id})


def _decode(codec: CursorCodec, scope: dict[str, Any], cursor: str) -> tuple[datetime, str]:
    try:
        body = codec.open(scope, cursor)
        at, command_id = body.get("at"), body.get("id")
        if not isinstance(at, str) or not isinstance(command_id, str) or len(command_id) > 36:
            raise BadCursor(NOT_OURS)
        when = datetime.fromisoformat(at)
        if when.tzinfo is None:
            raise BadCursor(NOT_OURS)
        return as_utc(when), command_id
    except (ValueError, OverflowError) as exc:  # BadCursor is a ValueError
        message = str(exc) if isinstance(exc, BadCursor) else NOT_OURS
        raise InvalidParameter("cursor", message, cursor) from None


async def termination_audit(
    params: AuditParams, admin: Admin, store: Store, cursors: CursorCodec
) -> AuditRows:
    """A page of the tenant's termination requests; a cursor only for the range it was issued
    for (InvalidParameter naming `cursor` otherwise)."""
    scope = _scope(admin.tenant_id, params)
    query = terminations.AuditQuery(
        since=params.since,
        until=params.until,
        requested_by=params.requested_by,
        limit=params.limit,
        after=_decode(cursors, scope, params.cursor) if params.cursor else None,
    )
    async with store.engine.connect() as conn:
        rows = await terminations.audit_page(conn, admin.tenant_id, query)
    more = len(rows) > params.limit
    rows = rows[: params.limit]
    last = rows[-1] if more else None
    return AuditRows(
        rows=rows,
        next_cursor=(
            _encode(cursors, scope, as_utc(last["requested_at"]), last["command_id"])
            if last
            else None
        ),
    )
