"""The Markdown tables `bench.soak` prints (and docs/reliability.md carries)."""

from __future__ import annotations

import argparse
import math
import os
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from bench.soak_load import KINDS

if TYPE_CHECKING:
    from bench.soak_burst import BurstResult
    from bench.soak_load import LoadFigures

LAG_POINTS = 12


def _ms(value: float) -> str:
    return "-" if math.isnan(value) else f"{value:.1f}"


def _ratio(loaded: float, idle: float) -> str:
    return "-" if math.isnan(loaded) or math.isnan(idle) or idle <= 0 else f"{loaded / idle:.2f}x"


def _seconds(value: float | None) -> str:
    return "not reached" if value is None else f"{value:.1f} s"


def load_table(load: LoadFigures) -> list[str]:
    """Per request kind: idle and loaded p50/p99, the p99 ratio, errors."""
    lines = [
        "| request | idle n | idle p50 ms | idle p99 ms | loaded n | loaded p50 ms "
        "| loaded p99 ms | p99 loaded/idle | errors |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for kind in KINDS:
        idle, loaded = load.idle.kinds[kind], load.loaded.kinds[kind]
        lines.append(
            f"| {kind} | {idle.count:,} | {_ms(idle.p(50))} | {_ms(idle.p(99))} "
            f"| {loaded.count:,} | {_ms(loaded.p(50))} | {_ms(loaded.p(99))} "
            f"| {_ratio(loaded.p(99), idle.p(99))} | {idle.errors + loaded.errors} |"
        )
    return lines


def lag_series(load: LoadFigures) -> str:
    """About a dozen (time, records behind) points over the loaded phase and the drain."""
    if not load.lag:
        return "no samples"
    step = max(1, len(load.lag) // LAG_POINTS)
    points = load.lag[::step]
    if points[-1] is not load.lag[-1]:
        points.append(load.lag[-1])
    return ", ".join(f"{at:.0f} s: {behind:,}" for at, behind, _ in points)


def markdown(args: argparse.Namespace, load: LoadFigures, burst: BurstResult) -> str:
    """The whole report."""
    idle, loaded = load.idle, load.loaded
    total = idle.requests + loaded.requests
    errors = idle.errors + loaded.errors
    at, max_behind = load.max_lag
    terminations = len(idle.terminated_ids) + len(loaded.terminated_ids)
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    rate = load.ingested / max(loaded.seconds, 1e-9)
    lines = [
        f"Run {when} on {os.cpu_count()} cores (broker {args.bootstrap}, PostgreSQL "
        f"{args.postgres}): admin API `uvicorn --workers {args.workers}`, "
        f"{args.concurrency} requests in flight, {args.population:,} listed sessions "
        f"(5 tenants); idle baseline {args.baseline_seconds / 2:.0f} s before and "
        f"{args.baseline_seconds / 2:.0f} s after {args.load_seconds:.0f} s of load with "
        f"ingestion offered at {args.rate:,.0f} events/s.",
        "",
        *load_table(load),
        "",
        "| figure | value |",
        "|---|---|",
        f"| requests/s, idle -> loaded | {idle.rate:,.0f} -> {loaded.rate:,.0f} "
        f"({loaded.rate / idle.rate if idle.rate else 0:.2f}x); idle before the load "
        f"{load.idle_rates[0]:,.0f}, after it {load.idle_rates[1]:,.0f} |",
        f"| error rate | {errors} of {total:,} ({100 * errors / max(total, 1):.3f} %) |",
        f"| ingested during load | {load.ingested:,} events in {loaded.seconds:.0f} s "
        f"({rate:,.0f} events/s) |",
        f"| registry lag, max | {max_behind:,} records ({at:.0f} s into the load; "
        f"{max_behind / max(rate, 1e-9):.1f} s of ingestion) |",
        f"| registry lag over time | {lag_series(load)} |",
        f"| lag back to 0 after the load stopped | {_seconds(load.recovery_seconds)} |",
        f"| terminations by id (baseline + load) | {terminations:,} accepted, "
        f"{load.not_applied} not applied |",
        "",
        f"Burst: {burst.sessions:,} sessions over {burst.commands} tenants, one "
        '`{"filter": {}}` termination per tenant through the admin API; one gateway per tenant.',
        "",
        "| burst figure | value |",
        "|---|---|",
        f"| sessions requested by the commands | {burst.requested:,} of {burst.sessions:,} |",
        f"| ended in the read model | {burst.terminated_reported:,} reported by the commands, "
        f"{burst.still_open} still open |",
        f"| session.terminated events | {burst.events:,} ({burst.events_missing} missing, "
        f"{burst.events_duplicated} duplicated) |",
        f"| revoked at the gateways | {burst.revoked_at_gateways:,} of {burst.sessions:,} |",
        f"| first command posted -> all applied (read model) | {_seconds(burst.applied_seconds)} |",
        f"| first command posted -> all revoked at the gateways | "
        f"{_seconds(burst.gateway_seconds)} |",
        "| sessions ended per second (to the gateways) | "
        + (f"{burst.sessions / burst.gateway_seconds:,.0f} |" if burst.gateway_seconds else "- |"),
        "",
        "Nothing lost."
        if not (load.lost or burst.lost)
        else "LOST: " + "; ".join(load.lost + burst.lost),
    ]
    return "\n".join(lines) + "\n"
