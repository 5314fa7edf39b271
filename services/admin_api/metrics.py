"""Request counts and latencies per route, on a registry of the app's own (not the global one)."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class RequestMetrics:
    """ASGI middleware recording `admin_api_requests_total` and `..._request_seconds`."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        labels = ("method", "route", "status")
        self.requests = Counter(
            "admin_api_requests", "HTTP requests answered", labels, registry=registry
        )
        self.latency = Histogram(
            "admin_api_request_seconds",
            "Time to answer an HTTP request",
            ("method", "route"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def record_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = scope.get("route")
            # the route template, never the raw path: ids would explode the label set
            name = getattr(route, "path", "unmatched")
            method = scope["method"]
            self.requests.labels(method, name, str(status)).inc()
            self.latency.labels(method, name).observe(time.perf_counter() - started)
