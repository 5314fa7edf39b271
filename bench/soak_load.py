"""The load generator of `bench.soak`: admins listing and terminating sessions, concurrently.

A fixed number of client tasks share one httpx connection pool on loopback; each picks a
request kind by weight, sends it, waits for the answer and goes again, until the phase's
time or request budget is spent. Every answer other than the expected status (or a
transport error, or a timeout) counts as an error of its kind.
"""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import dataclass, field
from typing import Any

import httpx

from bench.list_query import percentile

LIST_KINDS = ("list: first page", "list: search q", "list: filter + CIDR, by name")
TERMINATE = "terminate by id"
KINDS = (*LIST_KINDS, TERMINATE)
WEIGHTS = (3, 3, 3, 1)


@dataclass
class KindResult:
    """Latencies (ms) of the answered requests of one kind, and its errors."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0

    @property
    def count(self) -> int:
        return len(self.latencies) + self.errors

    def p(self, q: float) -> float:
        return percentile(self.latencies, q) if self.latencies else float("nan")


@dataclass
class PhaseResult:
    """One phase of load: results per kind, its duration, sessions it asked to terminate."""

    kinds: dict[str, KindResult]
    seconds: float
    terminated_ids: list[str]
    error_samples: list[str]

    @property
    def requests(self) -> int:
        return sum(k.count for k in self.kinds.values())

    @property
    def errors(self) -> int:
        return sum(k.errors for k in self.kinds.values())

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def merged(a: PhaseResult, b: PhaseResult) -> PhaseResult:
    """Two phases of the same kind as one (latencies pooled, durations added)."""
    kinds = {
        kind: KindResult(a.kinds[kind].latencies + b.kinds[kind].latencies,
                         a.kinds[kind].errors + b.kinds[kind].errors)
        for kind in KINDS
    }  # fmt: skip
    return PhaseResult(
        kinds,
        a.seconds + b.seconds,
        a.terminated_ids + b.terminated_ids,
        (a.error_samples + b.error_samples)[:5],
    )


def _list_params(kind: str, rng: random.Random) -> dict[str, Any]:
    if kind == LIST_KINDS[1]:
        return {"q": f"User {rng.randrange(5000)}"}
    if kind == LIST_KINDS[2]:
        return {
            "session_type": "mobile",
            "ip_address": f"10.{rng.randrange(250)}.0.0/16",
            "sort": "user_name",
        }
    return {}


async def run_phase(
    api: str,
    token: str,
    pool: list[str],
    *,
    seconds: float,
    max_requests: int,
    concurrency: int,
    seed: int,
) -> PhaseResult:
    """Drive the API for `seconds` (or `max_requests`); terminations take ids from `pool`."""
    rng = random.Random(seed)
    result = PhaseResult({k: KindResult() for k in KINDS}, 0.0, [], [])
    issued = 0
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    headers = {"Authorization": f"Bearer {token}"}
    started = time.perf_counter()
    deadline = started + seconds

    async def one(client: httpx.AsyncClient) -> None:
        kind = rng.choices(KINDS, WEIGHTS)[0]
        if kind == TERMINATE and not pool:
            kind = LIST_KINDS[0]
        target = pool.pop() if kind == TERMINATE else ""
        sent = time.perf_counter()
        try:
            if kind == TERMINATE:
                response = await client.post(
                    "/api/v1/sessions/terminations", json={"session_ids": [target]}
                )
                ok = response.status_code == 202
            else:
                response = await client.get("/api/v1/sessions", params=_list_params(kind, rng))
                ok = response.status_code == 200
            detail = f"{kind}: {response.status_code} {response.text[:200]}"
        except httpx.HTTPError as exc:
            ok, detail = False, f"{kind}: {type(exc).__name__} {exc}"
        if ok:
            result.kinds[kind].latencies.append((time.perf_counter() - sent) * 1000)
            if target:
                result.terminated_ids.append(target)
        else:
            result.kinds[kind].errors += 1
            if len(result.error_samples) < 5:
                result.error_samples.append(detail)

    async def client_task(client: httpx.AsyncClient) -> None:
        nonlocal issued
        while time.perf_counter() < deadline and issued < max_requests:
            issued += 1
            await one(client)

    async with httpx.AsyncClient(
        base_url=api, headers=headers, limits=limits, timeout=30
    ) as client:
        await asyncio.gather(*(client_task(client) for _ in range(concurrency)))
    result.seconds = time.perf_counter() - started
    return result


@dataclass
class LoadFigures:
    """What the load part measured."""

    idle: PhaseResult
    loaded: PhaseResult
    ingested: int
    lag: list[tuple[float, int, int]] = field(default_factory=list)
    recovery_seconds: float | None = None
    not_applied: int = -1
    idle_rates: tuple[float, float] = (0.0, 0.0)
    """requests/s of the idle phase before the load, and after it."""

    @property
    def max_lag(self) -> tuple[float, int]:
        at, behind, _ = max(self.lag, key=lambda sample: sample[1], default=(0.0, 0, 0))
        return at, behind

    @property
    def lost(self) -> list[str]:
        problems = []
        for name, phase in (("baseline", self.idle), ("load", self.loaded)):
            if phase.errors:
                problems.append(f"{name}: {phase.errors} error answers, e.g. {phase.error_samples}")
        if self.not_applied:
            problems.append(f"load: {self.not_applied} terminations by id not applied")
        if self.recovery_seconds is None:
            problems.append("load: the registry's lag did not drain")
        return problems
