"""Synthetic, realistic session event streams for the benchmark, fault-injection tests and demos.

Per session: one `session.created`, about `activity` `session.activity` events, and for a share
of sessions a `session.terminated` (logout). Sessions overlap in time; a small share of events
is swapped with its neighbour or duplicated, as several at-least-once producers would do.
Records are built as JSON bytes directly (no models), so millions are cheap to make.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from session_contracts.handles import record_key, session_handle

USER_AGENTS = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Safari/537.36 Edg/124.0",
    "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0",
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/124.0.0.0 Mobile Safari/537.36",
)
TYPES = ("browser",) * 7 + ("mobile",) * 2 + ("desktop_app", "api_client", "notebook")
START = (datetime.now(UTC) - timedelta(days=60)).replace(microsecond=0)
"""When a workload begins unless told: 60 days before this process started. Its events are
then dated before the broker appends them, as a live producer's are (`sessions.events` dates
each record when appended, and a creation dated later is taken as created then), for up to
2,500,000 sessions (2 s apart); `past_start` dates a larger one. Its sessions' policies
(`max_session_seconds`, `idle_timeout_seconds`) keep them active for months after."""


def past_start(sessions: int, now: datetime | None = None) -> datetime:
    """A start that dates every event of `sessions` sessions (2 s apart) two hours or more
    before `now` (default: the wall clock)."""
    return (now or datetime.now(UTC)) - timedelta(seconds=sessions * 2 + 7200)


@dataclass(frozen=True)
class Workload:
    """How the stream looks."""

    sessions: int
    tenants: int = 5
    activity: int = 20
    terminated_share: float = 0.2
    disorder_share: float = 0.02
    duplicate_share: float = 0.01
    seed: int = 7
    tenant_prefix: str = "tenant-"
    session_types: tuple[str, ...] = TYPES
    start: datetime = START
    max_session_seconds: int = 400 * 86400
    idle_timeout_seconds: int = 300 * 86400


def _stamp(at: datetime) -> str:
    return at.isoformat().replace("+00:00", "Z")


def _session_events(
    w: Workload, rng: random.Random, index: int
) -> list[tuple[float, dict[str, object]]]:
    tenant = f"{w.tenant_prefix}{index % w.tenants}"
    session_id = session_handle(tenant, f"s-{index:08d}-{rng.getrandbits(32):08x}")
    begin = index * 2.0 + rng.random()
    kind = rng.choice(w.session_types)
    common = {"schema_version": 3, "tenant_id": tenant, "session_id": session_id}
    created = {
        "type": "session.created",
        **common,
        "user_id": f"u{index % 5000}",
        "user_name": f"User {index % 5000}",
        "session_type": kind,
        "ip_address": f"10.{index % 250}.{rng.randrange(250)}.{rng.randrange(1, 250)}",
        "user_agent": rng.choice(USER_AGENTS),
        "policy": {
            "max_session_seconds": w.max_session_seconds,
            "idle_timeout_seconds": w.idle_timeout_seconds,
        },
    }
    events: list[tuple[float, dict[str, object]]] = [(begin, created)]
    at = begin
    for _ in range(max(0, round(rng.gauss(w.activity, w.activity / 4)))):
        at += rng.expovariate(1 / 30)
        activity: dict[str, object] = {"type": "session.activity", **common}
        if rng.random() < 0.1:
            activity["ip_address"] = f"192.168.{rng.randrange(250)}.{rng.randrange(1, 250)}"
        events.append((at, activity))
    if rng.random() < w.terminated_share:
        ended = {"type": "session.terminated", **common, "reason": "logout"}
        events.append((at + rng.expovariate(1 / 30), ended))
    return events


def records(w: Workload) -> Iterator[tuple[bytes, bytes]]:
    """(key, value) records of the stream, in log order (roughly by time)."""
    rng = random.Random(w.seed)
    timeline: list[tuple[float, dict[str, object]]] = []
    for index in range(w.sessions):
        timeline.extend(_session_events(w, rng, index))
    timeline.sort(key=lambda item: item[0])
    for i in range(len(timeline) - 1):
        if rng.random() < w.disorder_share:
            timeline[i], timeline[i + 1] = timeline[i + 1], timeline[i]
    for seconds, body in timeline:
        body["event_id"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        body["occurred_at"] = _stamp(w.start + timedelta(seconds=seconds))
        value = json.dumps(body, separators=(",", ":")).encode()
        key = record_key(str(body["tenant_id"]), str(body["session_id"]))
        yield key, value
        if rng.random() < w.duplicate_share:
            yield key, value


def sessions_for(events: int, activity: int = 20) -> int:
    """About how many sessions make `events` events with this much activity per session."""
    return max(1, round(events / (activity + 1.2)))
