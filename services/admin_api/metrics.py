"""Request counts and latencies per route template, for one process or several uvicorn workers.

The metric objects live on a registry of the app's own (tests build several apps in one
process). What /metrics renders (`exposition`):

- one process: that registry, plus the process, platform and garbage-collector collectors;
- several workers (`uvicorn --workers N`): prometheus_client's multiprocess mode. Start the
  server with `PROMETHEUS_MULTIPROC_DIR` naming an empty directory (emptied before each start):
  every worker then writes its counts to files there, and whichever worker answers a scrape
  sums them all (`MultiProcessCollector`), so counters add up across workers. Process and GC
  metrics are per process and have no meaning summed, so multiprocess mode has none (as
  prometheus_client documents); the workers' CPU and memory come from the host's exporter.
"""

from __future__ import annotations

import os
import time

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    GC_COLLECTOR,
    PLATFORM_COLLECTOR,
    PROCESS_COLLECTOR,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)
TERMINATIONS_ROUTE = "/api/v1/sessions/terminations"
"""The route of terminations, whose 5xx the `AdminApiTerminationsFailing` alert watches."""


def outcome_counter(name: str, documentation: str, metrics: CollectorRegistry | None) -> Counter:
    """A counter of `name`, labelled `outcome`, on `metrics` (None: on none), with both
    outcomes (`ok`, `failed`) exported from the start (at 0): an alert on "failed and never ok"
    then sees a process that never tried."""
    counter = Counter(name, documentation, ("outcome",), registry=metrics)
    for outcome in ("ok", "failed"):
        counter.labels(outcome)
    return counter


METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""The request methods counted by name; any other is `other`. Counted before any route or
credential is looked at, a method of the client's making was a label of its own: thousands of
made-up methods (up to 64 KiB each) grew the process and every scrape without bound (a
review, stop 72)."""


class RequestMetrics:
    """ASGI middleware recording `admin_api_requests_total` and `..._request_seconds`."""

    def __init__(self, app: ASGIApp, registry: CollectorRegistry) -> None:
        self.app = app
        labels = ("method", "route", "status")
        self.requests = Counter(
            "admin_api_requests", "HTTP requests answered", labels, registry=registry
        )
        # a termination refused: the alert's series exist from the start, so its first counts
        for failed in ("500", "503"):
            self.requests.labels("POST", TERMINATIONS_ROUTE, failed)
        # by the answer's class too: a flood of 2 ms 401s hid a p99 of seconds in real
        # searches from AdminApiSlow, which reads the classes other than 4xx (a review, stop 72)
        self.latency = Histogram(
            "admin_api_request_seconds",
            "Time to answer an HTTP request",
            ("method", "route", "status_class"),
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        method = scope["method"] if scope["method"] in METHODS else "other"
        counted = False
        answered = 500  # no answer started: the server answers 500

        def count(status: int) -> None:
            nonlocal counted, answered
            counted = True
            answered = status
            self.requests.labels(method, _route(scope), str(status)).inc()

        async def counting(message: Message) -> None:
            # counted before the answer leaves: whoever got an answer finds it counted (a
            # count after the body was sent raced a scrape made right after the answer)
            if message["type"] == "http.response.start":
                count(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting)
        finally:
            if not counted:  # no answer started: the server answers 500
                count(500)
            self.latency.labels(method, _route(scope), _status_class(answered)).observe(
                time.perf_counter() - started
            )


def _status_class(status: int) -> str:
    """`2xx` ... `5xx`; anything else `other` (a bounded label)."""
    return f"{status // 100}xx" if 100 <= status <= 599 else "other"


def _route(scope: Scope) -> str:
    """The route template, never the raw path: ids would explode the label set."""
    return str(getattr(scope.get("route"), "path", "unmatched"))


MULTIPROCESS_DIR = "PROMETHEUS_MULTIPROC_DIR"
"""prometheus_client reads it when imported: set it in the server's environment, not later."""


def app_registry() -> CollectorRegistry:
    """The registry the app's metric objects are made on (with the process collectors when
    one process serves)."""
    registry = CollectorRegistry()
    if not os.environ.get(MULTIPROCESS_DIR):
        for collector in (PROCESS_COLLECTOR, PLATFORM_COLLECTOR, GC_COLLECTOR):
            registry.register(collector)
    return registry


def exposition(registry: CollectorRegistry) -> tuple[bytes, str]:
    """The body and content type /metrics answers: every worker's counts in multiprocess mode."""
    directory = os.environ.get(MULTIPROCESS_DIR)
    if directory:
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=directory)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST
