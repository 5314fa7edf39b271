"""Errors that are not the caller's fault become 503 with a reason, never a bare 500; and the
statuses every operation can answer, declared once for the OpenAPI document."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from admin_api.adapters.bus import BusUnavailable

log = logging.getLogger(__name__)


async def _bus_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("Kafka unavailable for %s: %s", request.url.path, exc)
    return JSONResponse(
        {"detail": "the command bus (Kafka) is unavailable; nothing was changed, retry"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


async def _database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    log.warning("database unavailable for %s: %s", request.url.path, exc)
    return JSONResponse(
        {"detail": "the session database is unavailable, retry"},
        status_code=status.HTTP_503_SERVICE_UNAVAILABLE,
        headers={"Retry-After": "5"},
    )


def install_error_handlers(app: FastAPI) -> None:
    """Map unavailable dependencies to 503 responses."""
    app.add_exception_handler(BusUnavailable, _bus_unavailable)
    # OSError: a refused or timed-out connection, which asyncpg raises as it is (unwrapped)
    for error in (OperationalError, InterfaceError, PoolTimeout, OSError):
        app.add_exception_handler(error, _database_unavailable)


class ErrorBody(BaseModel):
    """Every refusal but a 422: what went wrong, in words."""

    detail: str = Field(examples=["missing bearer token"])


def _header(description: str) -> dict[str, Any]:
    return {"description": description, "required": True, "schema": {"type": "string"}}


ERROR_RESPONSES: dict[int, dict[str, Any]] = {
    400: {"model": ErrorBody, "description": "The body is not decodable (not UTF-8 JSON)."},
    401: {
        "model": ErrorBody,
        "description": "Missing, malformed, badly signed, expired or foreign-audience token.",
        "headers": {"WWW-Authenticate": _header("`Bearer`")},
    },
    403: {"model": ErrorBody, "description": "The token lacks the `edit_user_sessions` grant."},
    404: {"model": ErrorBody, "description": "None in your tenant (another tenant's is 404 too)."},
    413: {"model": ErrorBody, "description": "The body is over `SESSIONS_MAX_BODY_BYTES`."},
    414: {"model": ErrorBody, "description": "The query is over `SESSIONS_MAX_QUERY_BYTES`."},
    503: {
        "model": ErrorBody,
        "description": "The database (or, for changes, Kafka) is unavailable; nothing was "
        "changed, retry.",
        "headers": {"Retry-After": _header("Seconds to wait before retrying.")},
    },
}


def error_responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for these statuses, with the body the API sends for each."""
    return {code: ERROR_RESPONSES[code] for code in codes}


ANY_REQUEST = error_responses(413, 414)
"""Checked for every request before routing (`limits.RequestLimits`)."""
PROTECTED = error_responses(401, 403, 413, 414, 503)
"""Every `/api/v1` operation: authentication, the grant, size limits, the database."""
