"""The Active User Sessions list, its CSV export, and one session with its history."""

from __future__ import annotations

import asyncio
import csv
import io
from collections.abc import AsyncIterator, Mapping
from dataclasses import replace
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, status
from fastapi.responses import StreamingResponse

from admin_api.adapters import session_listing
from admin_api.adapters.session_search import first_page_and_total, is_search
from admin_api.domain.listing import encode_cursor, page_scope
from admin_api.entrypoints.dependencies import CurrentAdmin, DbSession, Now, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED, error_responses
from admin_api.entrypoints.list_params import ExportQuery, PageQuery
from admin_api.entrypoints.schemas import HistoryEntry, SessionDetail, SessionPublic, SessionsPage
from session_contracts.models import SessionId, as_utc

router = APIRouter(prefix="/api/v1/sessions", tags=["sessions"], responses=PROTECTED)

CSV_COLUMNS = (
    "session_id",
    "user_id",
    "user_name",
    "session_type",
    "ip_address",
    "created_at",
    "last_activity_at",
    "expires_at",
    "device",
    "user_agent",
    "max_session_seconds",
    "idle_timeout_seconds",
    "policy_outdated",
)


def to_public(row: Mapping[str, Any]) -> dict[str, Any]:
    """A read-model row as the fields of `SessionPublic`."""
    return {
        "session_id": row["session_id"],
        "user_id": row["user_id"],
        "user_name": row["user_name"],
        "session_type": row["session_type"],
        "ip_address": row["ip_address"],
        "created_at": as_utc(row["created_at"]),
        "last_activity_at": as_utc(row["last_activity_at"]),
        "expires_at": as_utc(row["expires_at"]),
        "device": row["device"],
        "user_agent": row["user_agent"],
        "policy": {
            "max_session_seconds": row["max_session_seconds"],
            "idle_timeout_seconds": row["idle_timeout_seconds"],
        },
        "policy_outdated": bool(row["policy_outdated"]),
    }


@router.get("", response_model=SessionsPage)
async def list_sessions(
    admin: CurrentAdmin, runtime: RuntimeDep, query: PageQuery, now: Now
) -> SessionsPage:
    """Active browser and mobile sessions of your tenant: search, filter, sort, page.

    `total` counts every match of the filter; later pages carry the first page's count.
    """
    store = runtime.store

    async def page() -> session_listing.Page:
        async with store.engine.connect() as conn:
            return await session_listing.fetch_page(conn, query, admin.tenant_id, now)

    async def total() -> int:
        if query.after is not None and query.after.total is not None:
            return query.after.total
        async with store.engine.connect() as conn:
            return await store.count_active(conn, query.filter, admin.tenant_id, now)

    if query.after is None and is_search(query.filter):
        async with store.engine.connect() as conn:
            found, matches = await first_page_and_total(store, conn, query, admin.tenant_id, now)
    else:
        # two connections: the page and the count run side by side
        found, matches = await asyncio.gather(page(), total())
    after = replace(found.after, total=matches) if found.after else None
    return SessionsPage(
        items=[SessionPublic.model_validate(to_public(r)) for r in found.rows],
        next_cursor=(
            encode_cursor(runtime.cursors, page_scope(admin.tenant_id, query), after)
            if after
            else None
        ),
        total=matches,
    )


def _cell(value: Any) -> str:
    text = "" if value is None else value.isoformat() if hasattr(value, "isoformat") else str(value)
    # A leading = + - @ would make a spreadsheet run the cell as a formula.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


async def _csv_lines(rows: AsyncIterator[Mapping[str, Any]]) -> AsyncIterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    async for row in rows:
        public = to_public(row)
        public.update(public.pop("policy"))
        writer.writerow([_cell(public[c]) for c in CSV_COLUMNS])
        if buffer.tell() > 64 * 1024:
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()


@router.get(
    "/export.csv",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/csv": {}}, "description": "The matching sessions."}},
)
async def export_sessions(
    admin: CurrentAdmin, runtime: RuntimeDep, query: ExportQuery, now: Now
) -> StreamingResponse:
    """Every session the current filter matches, in the current order, as CSV (streamed)."""
    rows = session_listing.iterate(runtime.engine, query, admin.tenant_id, now)
    # The first page is read before the response starts: a database that is down answers 503
    # (errors.py), not a 200 cut short.
    first = await anext(rows, None)

    async def every_row() -> AsyncIterator[Mapping[str, Any]]:
        if first is not None:
            yield first
            async for row in rows:
                yield row

    return StreamingResponse(
        _csv_lines(every_row()),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sessions.csv"'},
    )


@router.get("/{session_id}", response_model=SessionDetail, responses=error_responses(404))
async def get_session(
    admin: CurrentAdmin, db: DbSession, now: Now, session_id: Annotated[SessionId, Path()]
) -> SessionDetail:
    """One browser or mobile session of your tenant, in any state, with its lifecycle history."""
    found = await session_listing.fetch_session(db, admin.tenant_id, session_id, now)
    if found is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such session")
    row, history = found
    fields: Mapping[str, Any] = dict(row._mapping)
    return SessionDetail.model_validate(
        {
            **to_public(fields),
            "state": fields["state"],
            "active": bool(fields["active"]),
            "current_ip": fields["current_ip"],
            "ended_at": as_utc(fields["ended_at"]) if fields["ended_at"] else None,
            "end_reason": fields["end_reason"],
            "ended_by": fields["ended_by"],
            "history": [
                HistoryEntry(
                    event_id=h.event_id,
                    type=h.type,
                    occurred_at=as_utc(h.occurred_at),
                    detail=h.detail,
                )
                for h in history
            ],
        }
    )
