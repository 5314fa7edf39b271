"""Errors that are not the caller's fault become 503 with a reason, never a bare 500."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request, status
from fastapi.responses import JSONResponse
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
    for error in (OperationalError, InterfaceError, PoolTimeout):
        app.add_exception_handler(error, _database_unavailable)
