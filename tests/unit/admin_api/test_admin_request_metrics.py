"""The admin API's request counter (`admin_api.metrics.RequestMetrics`) counts a request before
its answer leaves: a client that got an answer and then reads the metrics finds it counted.
(It counted once the app returned, after the body was sent: the two-worker test read 199 of
200 once.)"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from starlette.types import Message, Receive, Scope, Send

from admin_api.metrics import RequestMetrics
from polling import until

SCOPE: Scope = {"type": "http", "method": "GET", "path": "/healthz"}


def _count(registry: CollectorRegistry, status: str) -> float | None:
    labels = {"method": "GET", "route": "unmatched", "status": status}
    value: float | None = registry.get_sample_value("admin_api_requests_total", labels)
    return value


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def test_a_request_is_counted_before_its_answer_leaves() -> None:
    registry = CollectorRegistry()
    done_answering = asyncio.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
        await done_answering.wait()  # the app goes on after its answer

    sent: list[Message] = []
    counted_when_sent: list[float | None] = []

    async def send(message: Message) -> None:
        counted_when_sent.append(_count(registry, "200"))
        sent.append(message)

    serving = asyncio.create_task(RequestMetrics(app, registry)(SCOPE, _receive, send))

    async def answered() -> bool:
        return len(sent) == 2

    await until(answered, 10, "the answer sent")
    assert counted_when_sent == [1.0, 1.0]  # counted before the first byte of the answer
    done_answering.set()
    await serving
    assert _count(registry, "200") == 1.0  # once


async def test_a_request_that_fails_before_answering_is_counted_as_500() -> None:
    registry = CollectorRegistry()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise RuntimeError("no answer")

    async def send(message: Any) -> None:
        raise AssertionError("nothing is sent")

    with pytest.raises(RuntimeError, match="no answer"):
        await RequestMetrics(app, registry)(SCOPE, _receive, send)
    assert _count(registry, "500") == 1.0


async def test_a_method_of_the_clients_making_is_counted_as_other() -> None:
    """Counted before any route or credential is looked at, a made-up method was a label of
    its own: thousands of them grew the process and every scrape without bound (a review,
    stop 72)."""
    registry = CollectorRegistry()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({"type": "http.response.start", "status": 405, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def send(message: Message) -> None:
        pass

    counting = RequestMetrics(app, registry)
    for made_up in ("X000001", "X000002", "B" * 60_000, "get"):
        await counting({**SCOPE, "method": made_up}, _receive, send)
    other = {"method": "other", "route": "unmatched", "status": "405"}
    assert registry.get_sample_value("admin_api_requests_total", other) == 4.0
    # the latency by the answer's class, so a flood of refusals cannot hide slow answers
    # from AdminApiSlow (a review, stop 72)
    timed = {"method": "other", "route": "unmatched", "status_class": "4xx"}
    assert registry.get_sample_value("admin_api_request_seconds_count", timed) == 4.0
    methods = {
        sample.labels["method"]
        for family in registry.collect()
        for sample in family.samples
        if "method" in sample.labels
    }
    assert methods == {"other", "POST"}  # POST: the termination series made at the start
