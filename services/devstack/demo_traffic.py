"""Demo sessions flowing through the real event path: a login service and gateways, simulated.

Like a platform service, the demo knows its sessions by their credential (a random token it
made up) and publishes through `SessionEventPublisher.created` and `.activity`, which put only
the session's handle on the wire (contract v2): the credential never leaves this process.
"""

from __future__ import annotations

import asyncio
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from session_contracts.models import SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher, activity_event, created_event

FIRST = ["Ada", "Grace", "Alan", "Edsger", "Barbara", "Donald", "Frances", "Ken", "Radia", "Tim"]
LAST = ["Lovelace", "Hopper", "Turing", "Dijkstra", "Liskov", "Knuth", "Allen", "Thompson"]
AGENTS = {
    SessionType.browser: [
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.5 Safari/605.1.15",
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Safari/537.36",
        "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
    ],
    SessionType.mobile: [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148",
        "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/126.0.0.0 Mobile Safari/537.36",
    ],
}
POLICIES = {
    SessionType.browser: SessionPolicy(
        max_session_seconds=30 * 86400, idle_timeout_seconds=8 * 3600
    ),
    SessionType.mobile: SessionPolicy(
        max_session_seconds=180 * 86400, idle_timeout_seconds=30 * 86400
    ),
}


@dataclass(frozen=True)
class DemoSession:
    """A made-up signed-in session, as the service that issued it knows it."""

    credential: str
    user_id: str
    user_name: str
    session_type: SessionType
    ip_address: str
    user_agent: str
    started_at: datetime


def demo_sessions(count: int, rng: random.Random) -> list[DemoSession]:
    """`count` sessions of made-up users, browser and mobile, started over the last hours.

    Credentials are random (256 bits, whatever `rng` says), as real ones must be.
    """
    now = datetime.now(UTC)
    sessions = []
    for n in range(count):
        kind = SessionType.mobile if rng.random() < 0.35 else SessionType.browser
        sessions.append(
            DemoSession(
                credential=secrets.token_urlsafe(32),
                user_id=f"user-{n % 40:03d}",
                user_name=f"{rng.choice(FIRST)} {rng.choice(LAST)}",
                session_type=kind,
                ip_address=f"10.{rng.randint(0, 3)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}",
                user_agent=rng.choice(AGENTS[kind]),
                started_at=now - timedelta(minutes=rng.randint(1, 6 * 60)),
            )
        )
    return sessions


async def run_demo_traffic(
    publisher: SessionEventPublisher,
    tenant_id: str,
    count: int = 60,
    activity_every_seconds: float = 5.0,
    seed: int | None = None,
) -> None:
    """Publish `count` demo sessions, then keep a few of them active until cancelled."""
    rng = random.Random(seed)
    sessions = demo_sessions(count, rng)
    await asyncio.gather(
        *(
            publisher.publish(
                created_event(
                    tenant_id=tenant_id,
                    credential=s.credential,
                    user_id=s.user_id,
                    user_name=s.user_name,
                    session_type=s.session_type,
                    ip_address=s.ip_address,
                    user_agent=s.user_agent,
                    policy=POLICIES[s.session_type],
                    occurred_at=s.started_at,
                )
            )
            for s in sessions
        )
    )
    while True:
        await asyncio.sleep(activity_every_seconds)
        busy = rng.sample(sessions, k=min(5, len(sessions)))
        await asyncio.gather(
            *(
                publisher.publish(activity_event(tenant_id=tenant_id, credential=s.credential))
                for s in busy
            )
        )
