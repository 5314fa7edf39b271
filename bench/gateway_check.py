"""What the gateway costs: ns added per request, and memory per million live revocations.

    python -m bench.gateway_check [--requests 210000] [--revocations 1000000]
                                  [--ratio-blocks 100] [--ratio-requests 5000] [--ratio-only]

Per request: the same trivial ASGI app (it marks the session authenticated, as a host does, so
activity is noted) called directly (no network, no server), with and without the middleware,
in alternating rounds of one run; the cost added is the difference of the best rounds. It
includes the handle derivation (one SHA-256 per credential) and the tenant-qualified lookup;
a second gateway resolves the tenant per request from the Host header (a resolver the host
supplies) instead of a fixed tenant. Memory: tracemalloc over the revocation table holding N
tenant-qualified keys (`<tenant>/<handle>`), against a plain dict of the same keys to expiry as
the baseline. Targets: <= 5 us added per request, <= 64 MB per million revocations.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import secrets
import statistics
import time
import tracemalloc
from array import array
from collections.abc import Callable
from typing import Any

from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from auth_gateway import GatewaySettings, SessionGateway
from auth_gateway.keys import TenantKeys
from auth_gateway.revocations import RevocationTable
from auth_gateway.watcher import RevocationWatcher
from bench.abba import ORDER, block_ratio, spread
from session_contracts.handles import record_key, session_handle
from session_contracts.settings import KafkaSettings

TARGET_NS = 5_000
_PROVIDER = TracerProvider()
_PROVIDER.add_span_processor(SimpleSpanProcessor(InMemorySpanExporter()))
TRACING = _PROVIDER.get_tracer("bench")
"""An SDK tracer of the bench's own (not the global provider: the off rounds stay off)."""
TARGET_MB_PER_MILLION = 64.0
OBSERVABILITY_TARGET = 1.05
CPU_CLOCK = time.thread_time_ns
"""The on/off rounds' clock: CPU time of this thread (preemption by other work not counted)."""
FAR_FUTURE = 4_000_000_000.0


async def plain_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The cheapest complete HTTP response, so the difference is the middleware alone; like a
    host that recognised the session, it says so (`request.state.session_authenticated`)."""
    state = scope.get("state")
    if state is not None:
        state["session_authenticated"] = True
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


async def _receive() -> Message:
    return {"type": "http.request", "body": b"", "more_body": False}


async def _send(message: Message) -> None:
    return None


def browser_scope(extra: list[tuple[bytes, bytes]], query: bytes = b"") -> Scope:
    """Headers a real browser navigation carries."""
    return {
        "type": "http",
        "method": "GET",
        "path": "/reports",
        "query_string": query,
        "client": ("10.1.2.3", 50000),
        "headers": [
            (b"host", b"platform.example.test"),
            (b"user-agent", b"Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 Chrome/120"),
            (b"accept", b"text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"),
            (b"accept-language", b"en-GB,en;q=0.9"),
            (b"accept-encoding", b"gzip, deflate, br"),
            (b"referer", b"https://platform.example.test/home"),
            *extra,
        ],
    }


async def _round(
    app: ASGIApp, scope: Scope, requests: int, clock: Callable[[], int] = time.perf_counter_ns
) -> float:
    started = clock()
    for _ in range(requests):
        await app(dict(scope), _receive, _send)
    return (clock() - started) / requests


async def per_request_ns(
    gateway_app: ASGIApp, scope: Scope, requests: int, rounds: int = 7
) -> tuple[float, float]:
    """Best-of-rounds ns per request: (without middleware, with it)."""
    bare: list[float] = []
    wrapped: list[float] = []
    await _round(gateway_app, scope, 1000)  # warm-up: first activity report, caches
    for _ in range(rounds):
        bare.append(await _round(plain_app, scope, requests // rounds))
        wrapped.append(await _round(gateway_app, scope, requests // rounds))
    return min(bare), min(wrapped)


def held_bytes(build: Callable[[], Any]) -> tuple[int, int]:
    """Bytes still allocated after `build()` (the object kept alive), and the peak on the way."""
    gc.collect()
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        before = tracemalloc.get_traced_memory()[0]
        kept = build()
        current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    del kept
    return current - before, peak - before


def fill_table(keys: list[bytes]) -> RevocationTable:
    table = RevocationTable()
    for key in keys:
        table.add(key, FAR_FUTURE)
    return table


def growth_holds(keys: list[bytes]) -> tuple[float, float, float]:
    """Seconds: the longest single add while a table grows to `len(keys)` entries, the mean
    add, and a whole-table copy at the final size (`whole_copy_seconds`)."""
    table = RevocationTable()
    clock = time.perf_counter
    longest = 0.0
    started = clock()
    for key in keys:
        before = clock()
        table.add(key, FAR_FUTURE)
        longest = max(longest, clock() - before)
    mean = (clock() - started) / len(keys)
    while table.resizing:
        table.evict(0, 65_536)
    return longest, mean, whole_copy_seconds(table)


def whole_copy_seconds(table: RevocationTable) -> float:
    """The resize before 2026-12-06, replayed on `table`: every slot copied at once into
    arrays twice its size, as the one add that grew the table did (the event loop held)."""
    old_keys, old_until, old_why = table._keys, table._until, table._why
    started = time.perf_counter()
    size = 2 * len(old_keys)
    keys = array("q", bytes(8 * size))
    until = array("I", bytes(4 * size))
    why = array("B", bytes(size))
    mask = size - 1
    for slot, key in enumerate(old_keys):
        if key:
            i = key & mask
            while keys[i]:
                i = (i + 1) & mask
            keys[i] = key
            until[i] = old_until[slot]
            why[i] = old_why[slot]
    return time.perf_counter() - started


def fill_dict(keys: list[bytes]) -> dict[bytes, float]:
    # bytes(memoryview(...)) copies: the dict holds keys of its own, as one read off the topic
    # would (bytes(key) would return the very object the table was fed)
    return {bytes(memoryview(key)): FAR_FUTURE for key in keys}


def derivation_ns(count: int) -> tuple[float, float]:
    """ns per handle derivation: the gateway's prepared `TenantKeys.key`, and the plain
    `record_key(tenant, session_handle(tenant, credential))` it must equal."""
    keys = TenantKeys("acme")
    credentials = [secrets.token_urlsafe(32) for _ in range(1000)]
    raw = [c.encode() for c in credentials]
    assert all(
        keys.key(r) == record_key("acme", session_handle("acme", c))
        for r, c in zip(raw, credentials, strict=True)
    )
    best_fast = best_plain = float("inf")
    for _ in range(5):
        started = time.perf_counter_ns()
        for _ in range(count // 1000):
            for r in raw:
                keys.key(r)
        best_fast = min(best_fast, (time.perf_counter_ns() - started) / count)
        started = time.perf_counter_ns()
        for _ in range(count // 1000):
            for c in credentials:
                record_key("acme", session_handle("acme", c))
        best_plain = min(best_plain, (time.perf_counter_ns() - started) / count)
    return best_fast, best_plain


def apply_rate(count: int) -> float:
    """Revocation records folded per second by the watcher (the start-up catch-up cost)."""
    from datetime import UTC, datetime, timedelta

    from session_contracts.codec import encode
    from session_contracts.models import SessionRevoked, SessionType, TerminationReason

    now = datetime.now(UTC)
    handles = [session_handle("acme", f"credential-{n}") for n in range(count)]
    records = [
        (
            record_key("acme", handles[n]),
            encode(
                SessionRevoked(
                    tenant_id="acme",
                    session_id=handles[n],
                    session_type=SessionType.browser,
                    revoked_at=now,
                    reason=TerminationReason.admin,
                    valid_until=now + timedelta(hours=8),
                )
            ),
        )
        for n in range(count)
    ]
    watcher = RevocationWatcher(
        KafkaSettings(kafka_bootstrap_servers="unused:1"),
        "revocations",
        ["acme"],
        RevocationTable(),
    )
    started = time.perf_counter()
    for key, value in records:
        watcher.apply(key, value)
    return count / (time.perf_counter() - started)


TENANTS_BY_HOST = {f"t{n}.platform.example.test".encode(): f"t{n}" for n in range(1000)}
TENANTS_BY_HOST[b"platform.example.test"] = "acme"


def tenant_from_host(scope: Scope) -> str | None:
    """A multi-tenant host's resolver: the tenant is named by the Host header."""
    for name, value in scope["headers"]:
        if name == b"host":
            return TENANTS_BY_HOST.get(value)
    return None


def bench_gateway(
    resolver: Callable[[Scope], str | None] | None, **settings: Any
) -> SessionGateway:
    """A gateway current all through the run, 100,001 revocations in its table; `settings`
    are further settings."""
    gateway = SessionGateway.from_settings(
        GatewaySettings(
            KAFKA_BOOTSTRAP_SERVERS="unused:1",
            gateway_tenant_id=None if resolver else "acme",
            gateway_max_staleness_seconds=3600,  # current all through the run, as if following
            **settings,
        ),
        tenant_resolver=resolver,
    )
    gateway.watcher.mark_current()
    for n in range(100_000):
        tenant = f"t{n % 1000}"
        gateway.table.add(
            record_key(tenant, session_handle(tenant, secrets.token_urlsafe(32))), FAR_FUTURE
        )
    gateway.table.add(record_key("acme", session_handle("acme", REVOKED.decode())), FAR_FUTURE)
    return gateway


REVOKED = secrets.token_urlsafe(32).encode()
LIVE = secrets.token_urlsafe(32).encode()
CASES = {
    "live session, cookie": [(b"cookie", b"theme=dark; sid=" + LIVE + b"; lang=en")],
    "live session, header": [(b"x-session-id", LIVE)],
    "no session": [],
    "revoked session (303)": [(b"cookie", b"sid=" + REVOKED)],
}
SCHEMED = {
    "gateway_header_name": "Authorization",
    "gateway_header_scheme": "Bearer",
    "gateway_query_param": "access_token",
}
"""A gateway reading `Authorization: Bearer <id>` and `?access_token=<id>` (since stop 67)."""
SCHEMED_LIVE = b"x" + secrets.token_urlsafe(30).encode() + b"x"
"""A live id without letters of the scheme at its ends (about 3 ids in 4): one reading."""
LETTERED = b"rB" + secrets.token_urlsafe(30).encode() + b"ea"
"""An id with two of them at each end: nine readings, each a hash (the ids a strip of the
scheme's letters could shorten are looked up shortened too). The random `LIVE` would make the
bearer and query figures depend on its ends from run to run."""
SCHEMED_CASES = {
    "live session, bearer": ([(b"authorization", b"Bearer " + SCHEMED_LIVE)], b""),
    "bearer, scheme letters at ends": ([(b"authorization", b"Bearer " + LETTERED)], b""),
    "live session, query": ([], b"v=2&access_token=" + SCHEMED_LIVE),
    "query, scheme letters at ends": ([], b"v=2&access_token=" + LETTERED),
    "no session, a query": ([], b"q=report&page=2"),
    "no scheme, a bare id": ([(b"authorization", SCHEMED_LIVE)], b""),
    "no scheme, letters and a tab": ([(b"authorization", b"B\t" + LETTERED + b"B")], b""),
}
"""The last two are no session: the second defence looks up what an app ignoring the scheme
reads (its words and their cuts). The bare id is one reading, cached; the other, with a tab and
the scheme's letters at its ends, is past the cache's bound of readings (stop 68): its readings
are made on every request, what a client sending values that differ each time costs."""


async def observability_ratio(requests: int, blocks: int) -> bool:
    """Metrics and tracing on against off: ABBA blocks of short rounds in the same run.

    One gateway serves every round, so the two sides differ in nothing but what is switched.
    On: its collector registered in a registry and scraped after the round, and an
    OpenTelemetry SDK provider with a span processor, a span of it current during the round
    (what `SESSIONS_OTLP_ENDPOINT` installs, at its worst); off: the collector unregistered,
    no span. Refusals are counted in both (plain dict increments, part of the middleware).
    Rounds are timed in this thread's CPU time (`CPU_CLOCK`): the request path is CPU work in
    one thread, and time spent preempted by other work on a shared machine is not counted.
    Per case: the median of the block ratios with its bootstrap 95% interval (`bench.abba`).
    Target: the interval's upper end within 1.05; returns whether every case met it.
    """
    registry = CollectorRegistry()
    gateway = bench_gateway(None)
    collector = gateway.register_metrics(registry)
    registry.unregister(collector)
    app = gateway.wrap(plain_app, manage_lifespan=False)

    async def timed(scope: Scope, on: bool) -> float:
        if not on:
            return await _round(app, scope, requests, CPU_CLOCK)
        registry.register(collector)
        try:
            with TRACING.start_as_current_span("bench round"):  # a span is current: worst case
                ns = await _round(app, scope, requests, CPU_CLOCK)
            generate_latest(registry)  # a scrape after the round (its garbage included)
        finally:
            registry.unregister(collector)
        return ns

    print(
        f"\nmetrics and tracing on vs off: {blocks} ABBA blocks of {requests} requests a "
        f"round, same gateway, thread CPU time; target: 95% CI upper end <= "
        f"{OBSERVABILITY_TARGET:.2f}x"
    )
    met = True
    for name, headers in CASES.items():
        scope = browser_scope(headers)
        await _round(app, scope, 2000)  # warm-up
        ratios: list[float] = []
        off_ns: list[float] = []
        for _ in range(blocks):
            rounds: dict[str, list[float]] = {"A": [], "B": []}
            for side in ORDER:
                rounds[side].append(await timed(scope, on=side == "B"))
            off_ns.extend(rounds["A"])
            ratios.append(block_ratio(rounds["A"], rounds["B"]))
        figure = spread(ratios)
        met = met and figure.within(OBSERVABILITY_TARGET)
        print(f"{name:34} off {statistics.median(off_ns):6.0f} ns CPU median; on/off {figure}")
    print(f"observability on/off -> {'OK' if met else 'NOT SHOWN WITHIN TARGET'}")
    return met


async def main(
    requests: int,
    revocations: int,
    rounds: int = 7,
    ratio_blocks: int = 100,
    ratio_requests: int = 5000,
) -> None:
    print(
        f"per request, ASGI called directly, {requests} requests per case, best of {rounds} rounds"
    )
    print(f"{'case':34} {'without':>10} {'with':>10} {'added':>10}  target <= {TARGET_NS} ns")
    worst = 0.0
    cookie_and_header = {name: (headers, b"") for name, headers in CASES.items()}
    for label, resolver, settings, cases in (
        ("fixed tenant", None, {}, cookie_and_header),
        ("resolver", tenant_from_host, {}, cookie_and_header),
        ("bearer+query", None, SCHEMED, SCHEMED_CASES),
    ):
        app = bench_gateway(resolver, **settings).wrap(plain_app, manage_lifespan=False)
        for name, (headers, query) in cases.items():
            scope = browser_scope(headers, query)
            bare, wrapped = await per_request_ns(app, scope, requests, rounds)
            added = wrapped - bare
            worst = max(worst, added)
            print(
                f"{label + ', ' + name:34} {bare:8.0f}ns {wrapped:8.0f}ns {added:8.0f}ns"
                f"  ({wrapped / bare:.2f}x)"
            )
    print(f"worst added: {worst:.0f} ns -> {'OK' if worst <= TARGET_NS else 'OVER TARGET'}")
    await observability_ratio(ratio_requests, ratio_blocks)
    fast, plain = derivation_ns(200_000)
    print(
        f"of which the handle derivation: {fast:.0f} ns per credential "
        f"(record_key(session_handle(...)) computed plainly: {plain:.0f} ns)"
    )

    keys = [
        record_key(f"t{n % 1000}", session_handle(f"t{n % 1000}", secrets.token_urlsafe(32)))
        for n in range(revocations)
    ]
    table_bytes, table_peak = held_bytes(lambda: fill_table(keys))
    dict_bytes, _ = held_bytes(lambda: fill_dict(keys))
    per_million = table_bytes / revocations * 1e6 / 2**20
    print(f"\nmemory for {revocations} live revocations (keys <tenant>/<handle>), tracemalloc")
    print(
        f"revocation table: {table_bytes / 2**20:7.1f} MB held ({per_million:.1f} MB per million,"
        f" peak while growing {table_peak / 2**20:.1f} MB) -> "
        f"{'OK' if per_million <= TARGET_MB_PER_MILLION else 'OVER TARGET'}"
        f" (target <= {TARGET_MB_PER_MILLION:.0f})"
    )
    print(
        f"baseline dict[bytes, float]: {dict_bytes / 2**20:7.1f} MB held "
        f"(table uses {table_bytes / dict_bytes:.2f}x of it)"
    )
    longest, mean, whole = growth_holds(keys)
    print(
        f"growing to {revocations} revocations: longest single add {longest * 1e3:.1f} ms "
        f"(mean {mean * 1e6:.2f} us); a whole-table copy at that size, as one add did at each "
        f"growth before 2026-12-06: {whole * 1e3:.0f} ms (longest add {longest / whole:.3f}x)"
    )
    print(f"\nwatcher catch-up: {apply_rate(50_000):,.0f} revocation records folded per second")


def cli() -> None:
    """Parse arguments and run."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=210_000, help="per case, all rounds")
    parser.add_argument(
        "--rounds",
        type=int,
        default=7,
        help="alternating rounds per case; on a loaded machine many short rounds (e.g. 80) "
        "escape preemptions that spoil long ones",
    )
    parser.add_argument("--revocations", type=int, default=1_000_000)
    parser.add_argument(
        "--ratio-blocks",
        type=int,
        default=100,
        help="ABBA blocks per case of the observability on/off comparison",
    )
    parser.add_argument(
        "--ratio-requests", type=int, default=5000, help="requests per round of those blocks"
    )
    parser.add_argument(
        "--ratio-only", action="store_true", help="only the observability on/off comparison"
    )
    args = parser.parse_args()
    if args.ratio_only:
        asyncio.run(observability_ratio(args.ratio_requests, args.ratio_blocks))
        return
    asyncio.run(
        main(args.requests, args.revocations, args.rounds, args.ratio_blocks, args.ratio_requests)
    )


if __name__ == "__main__":
    cli()
