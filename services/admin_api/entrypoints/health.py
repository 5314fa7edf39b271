"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy import text

from admin_api.entrypoints.dependencies import RuntimeDep
from admin_api.entrypoints.errors import ANY_REQUEST

router = APIRouter(tags=["operations"], responses=ANY_REQUEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


class Readiness(BaseModel):
    """Whether the API can serve, and each dependency's state."""

    status: Literal["ready", "not ready"]
    checks: dict[str, str] = Field(examples=[{"database": "ok", "kafka": "connecting"}])


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: see `checks`."}},
)
async def readyz(runtime: RuntimeDep, response: Response) -> Readiness:
    """Ready when the read model answers and the Kafka producer is connected."""
    checks: dict[str, str] = {}
    try:
        async with runtime.engine.connect() as conn:
            await conn.execute(text("SELECT 1"))
        checks["database"] = "ok"
    except Exception as exc:  # any failure means not ready; the reason is reported
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["kafka"] = "ok" if runtime.bus.ready else "connecting"
    ready = all(v == "ok" for v in checks.values())
    if not ready:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
    return Readiness(status="ready" if ready else "not ready", checks=checks)


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics of this process."""
    return Response(generate_latest(runtime.metrics), media_type=CONTENT_TYPE_LATEST)
