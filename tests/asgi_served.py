"""An app served in-process: its lifespan run, and an HTTP client of it through ASGI."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import httpx


@contextlib.asynccontextmanager
async def served(app: Any, base_url: str = "http://api") -> AsyncIterator[httpx.AsyncClient]:
    """`app` (a Starlette or FastAPI app) with its lifespan running, and a client of it."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client
