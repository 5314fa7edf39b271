"""Liveness, readiness and Prometheus metrics."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Response, status
from pydantic import BaseModel, Field

from admin_api.entrypoints.dependencies import RuntimeDep
from admin_api.entrypoints.errors import ANY_REQUEST
from admin_api.metrics import exposition

router = APIRouter(tags=["operations"], responses=ANY_REQUEST)


@router.get("/healthz")
async def healthz() -> dict[str, str]:
    """The process is up."""
    return {"status": "ok"}


class Readiness(BaseModel):
    """Whether the API can serve, and each dependency's state.

    `ready`: reads and writes. `degraded`: reads only, writes (terminations) answer 503
    until Kafka is back; still 200, so a load balancer keeps sending the reads. `not ready`
    (503): the database does not answer, or its schema is behind this release (its searches
    call what the newer revisions create), so nothing can be served.
    """

    status: Literal["ready", "degraded", "not ready"]
    checks: dict[str, str] = Field(
        examples=[{"database": "ok", "schema": "ok", "kafka": "connecting"}]
    )


@router.get(
    "/readyz",
    response_model=Readiness,
    responses={503: {"model": Readiness, "description": "Not ready: see `checks`."}},
)
async def readyz(runtime: RuntimeDep, response: Response) -> Readiness:
    """200 while the read model answers at this release's schema (`degraded` without Kafka:
    writes refused); else 503."""
    checks: dict[str, str] = {}
    behind = False
    try:
        # shared with the calls at the same moment; logged with its revisions when it changes
        standing = await runtime.schema.read_shared()
        checks["database"] = "ok"
        # without the revisions: anyone who reaches the port reads this
        checks["schema"] = standing.describe(named=False)
        behind = standing.state == "behind"
    except Exception as exc:  # any failure means not ready; the reason is reported
        checks["database"] = f"unavailable: {type(exc).__name__}"
    checks["kafka"] = "ok" if runtime.bus.ready else "connecting"
    if checks["database"] != "ok" or behind:
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return Readiness(status="not ready", checks=checks)
    return Readiness(status="ready" if checks["kafka"] == "ok" else "degraded", checks=checks)


@router.get("/metrics", response_class=Response)
async def metrics(runtime: RuntimeDep) -> Response:
    """Prometheus metrics: requests per route template (summed over every worker)."""
    body, content_type = exposition(runtime.metrics)
    return Response(body, media_type=content_type)
