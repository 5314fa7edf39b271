"""The registry's operations port: `/healthz`, `/readyz` and `/metrics` (Prometheus).

A small Starlette app served by uvicorn inside the registry's own event loop, on a socket the
registry binds itself (127.0.0.1 by default), so a port in use fails the start with a clear
error and signals stay the registry's (uvicorn's own handlers are not installed).

- `/healthz` 200 while the consumer loop goes round (it polled, settled a batch or retried
  within `registry_alive_seconds`); 503 when it has died or hangs: restart the process.
- `/readyz` 200 when caught up: every assigned partition fetched at least once and the total
  lag at most `registry_ready_max_lag` records; 503 otherwise (still catching up).
- `/metrics` the registry's metrics (`session_registry.metrics`), the outbox read on each scrape.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import uvicorn
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from session_contracts.http_limits import HeadLimitedH11

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Verdict:
    """A probe's answer: whether it passes, and the figures behind it."""

    ok: bool
    detail: dict[str, Any]


@dataclass(frozen=True)
class Probes:
    """What the operations port asks the registry."""

    alive: Callable[[], Verdict]
    ready: Callable[[], Verdict]
    refresh: Callable[[], Awaitable[None]]
    """Reads what the metrics take from the database (the outbox) before a scrape."""
    metrics: CollectorRegistry | None
    """None: metrics are off (`registry_metrics`), /metrics is not served."""


def operations_app(probes: Probes) -> Starlette:
    """The Starlette app of the operations port."""

    def answer(verdict: Verdict, passing: str, failing: str) -> JSONResponse:
        body = {"status": passing if verdict.ok else failing, **verdict.detail}
        return JSONResponse(body, status_code=200 if verdict.ok else 503)

    async def healthz(request: Request) -> Response:
        return answer(probes.alive(), "ok", "stalled")

    async def readyz(request: Request) -> Response:
        return answer(probes.ready(), "ready", "not ready")

    async def metrics(request: Request) -> Response:
        try:
            await probes.refresh()
        except Exception as exc:  # the database away: serve the rest, the outbox as last read
            log.warning("metrics: outbox not read: %s", type(exc).__name__)
        assert probes.metrics is not None  # the route exists only then
        return Response(generate_latest(probes.metrics), media_type=CONTENT_TYPE_LATEST)

    routes = [Route("/healthz", healthz), Route("/readyz", readyz)]
    if probes.metrics is not None:
        routes.append(Route("/metrics", metrics))
    return Starlette(routes=routes)


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without its signal handlers: the registry's own stop it."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


class OperationsServer:
    """Serves `operations_app(probes)` on `host:port` (port 0: any free port, see `port`)."""

    def __init__(self, probes: Probes, host: str, port: int) -> None:
        self._socket = socket.create_server((host, port), family=_family(host), reuse_port=False)
        self._socket.setblocking(False)
        self.host = host
        self.port: int = self._socket.getsockname()[1]
        config = uvicorn.Config(
            operations_app(probes),
            lifespan="off",
            log_level="warning",
            access_log=False,
            proxy_headers=False,
            http=HeadLimitedH11,
        )
        self._server = _EmbeddedServer(config)

    async def serve(self) -> None:
        """Serve until `stop()` (run it as a task; cancelling it closes the port too)."""
        try:
            await self._server.serve(sockets=[self._socket])
        finally:
            # Cut short (cancelled), uvicorn has not closed its asyncio servers: close them
            # before the socket, or the event loop keeps watching the socket's file
            # descriptor number, which the next connection opened (a Kafka client's) reuses.
            for server in getattr(self._server, "servers", []):
                server.close()
            self._socket.close()

    def stop(self) -> None:
        """Ask the server to finish (the task then returns)."""
        self._server.should_exit = True


def _family(host: str) -> socket.AddressFamily:
    return socket.AF_INET6 if ":" in host else socket.AF_INET
