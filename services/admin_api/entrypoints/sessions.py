"""The Active User Sessions list, its CSV export, and one session with its history: the routes
and the shapes they answer in (the work is `service_layer.sessions`)."""

from __future__ import annotations

import asyncio
import csv
import io
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Annotated, Any

from fastapi import APIRouter, Path
from fastapi.responses import Response, StreamingResponse
from fastapi.routing import APIRoute
from starlette.routing import Match
from starlette.types import Message, Receive, Scope, Send

from admin_api.entrypoints.dependencies import CurrentAdmin, RuntimeDep
from admin_api.entrypoints.errors import PROTECTED, error_responses
from admin_api.entrypoints.list_params import ExportQuery, PageQuery
from admin_api.entrypoints.schemas import HistoryEntry, SessionDetail, SessionPublic, SessionsPage
from admin_api.service_layer import sessions
from session_contracts.models import SessionId, as_utc

log = logging.getLogger(__name__)
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


@router.get("", response_model=SessionsPage, responses=error_responses(429))
async def list_sessions(admin: CurrentAdmin, runtime: RuntimeDep, query: PageQuery) -> Response:
    """Active browser and mobile sessions of your tenant: search, filter, sort, page.

    `total` counts every match of the filter, or is a lower bound when `total_exact` is false
    (a broad search: `count=exact` counts them all); later pages carry the first page's count.
    """
    page = await sessions.list_sessions(
        query, admin, runtime.store, runtime.cursors, runtime.clock, runtime.searches
    )
    listed = SessionsPage(
        items=[SessionPublic.model_validate(to_public(r)) for r in page.rows],
        next_cursor=page.next_cursor,
        total=page.total,
        total_exact=page.total_exact,
        as_of=page.as_of,
    )
    # validated once, here, and encoded by pydantic: returned as a model, FastAPI dumps it,
    # validates the dump against `response_model` again and encodes that (0.86 against 0.41
    # ms for a page of 50); `response_model` still documents it
    return Response(listed.model_dump_json(), media_type="application/json")


def _cell(value: Any) -> str:
    if isinstance(value, bool):  # JSON's spelling, as the API answers it, not Python's True
        return "true" if value else "false"
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
    responses={
        200: {"content": {"text/csv": {}}, "description": "The matching sessions."},
        **error_responses(429),
    },
)
async def export_sessions(
    admin: CurrentAdmin, runtime: RuntimeDep, query: ExportQuery
) -> StreamingResponse:
    """Every session the current filter matches, in the current order, as CSV (streamed).

    At most `SESSIONS_EXPORTS_PER_TENANT` (2) of one tenant stream from a process at once;
    another is answered 429 with Retry-After."""
    release = runtime.exports.claim(admin.tenant_id)
    try:
        # The first rows are read before the response starts: a database that is down answers
        # 503 (errors.py), not a 200 cut short.
        rows = await sessions.export_sessions(
            query, admin, runtime.store, runtime.clock, runtime.searches
        )
    except BaseException:
        release()
        raise
    return _ExportResponse(
        _csv_lines(rows),
        release,
        admin.tenant_id,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": 'attachment; filename="sessions.csv"'},
    )


EXPORT_STALL_SECONDS = 60.0
"""How long an export waits for its client to take a part before it gives up: a client that
stops reading but keeps its connection open would otherwise hold one of its tenant's exports
for as long as it likes (the server has no write timeout)."""


class ExportStalled(Exception):
    """The client took no part of an export for `EXPORT_STALL_SECONDS`."""


class _ExportResponse(StreamingResponse):
    """A streamed export that gives its tenant's export back when it ends, however it ends
    (sent whole, the client gone before or during the body, a failure, a client that stopped
    reading: `EXPORT_STALL_SECONDS`)."""

    def __init__(
        self,
        content: AsyncIterator[str],
        release: Callable[[], None],
        tenant_id: str,
        **kwargs: Any,
    ) -> None:
        super().__init__(content, **kwargs)
        self._release = release
        self._tenant = tenant_id

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def bounded(message: Message) -> None:
            try:
                async with asyncio.timeout(EXPORT_STALL_SECONDS):
                    await send(message)
            except TimeoutError:
                raise ExportStalled(
                    f"the client took no part of the export for {EXPORT_STALL_SECONDS:.0f} s"
                ) from None

        try:
            await super().__call__(scope, receive, bounded)
        except ExportStalled as stalled:
            # the server closes the connection of a response left incomplete
            log.warning("CSV export of tenant %s cut off: %s", self._tenant, stalled)
        finally:
            self._release()


class _SessionDetailRoute(APIRoute):
    """`/{session_id}`, which leaves `/terminations` to the terminations route.

    A session id is a 43-character handle (contract v2), so `terminations` is never one: a
    method that path lacks (GET) falls through to the terminations route, whose 405 names POST,
    instead of being refused here as a session id too short (422). (In v1 `terminations` was a
    well-formed id, answered 404.)
    """

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        match, child = super().matches(scope)
        if match is not Match.NONE and child["path_params"].get("session_id") == "terminations":
            return Match.NONE, {}
        return match, child


async def get_session(
    admin: CurrentAdmin, runtime: RuntimeDep, session_id: Annotated[SessionId, Path()]
) -> SessionDetail:
    """One browser or mobile session of your tenant, in any state, with its lifecycle history.

    An ended session is kept for the registry's retention (`SESSIONS_ENDED_RETENTION_DAYS`,
    30 by default, counted from the later of its end and its expiry); after it, 404.
    """
    found = await sessions.session_detail(session_id, admin, runtime.store, runtime.clock)
    fields = found.fields
    return SessionDetail.model_validate(
        {
            **to_public(fields),
            "state": fields["state"],
            "active": found.active,
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
                for h in found.history
            ],
        }
    )


router.add_api_route(
    "/{session_id}",
    get_session,
    methods=["GET"],
    response_model=SessionDetail,
    responses=error_responses(404),
    route_class_override=_SessionDetailRoute,
)
