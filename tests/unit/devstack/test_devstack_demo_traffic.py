"""The dev stack's demo traffic publishes contract v2 events: handles on the wire, never the
credentials the simulated login service made up."""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Callable

import pytest

from devstack import demo_traffic
from fresh_topics import connection
from session_contracts.codec import EVENTS, decode, encode
from session_contracts.handles import is_handle, record_key, session_handle
from session_contracts.models import SCHEMA_VERSION, Event, SessionActivity, SessionCreated
from session_contracts.publisher import SessionEventPublisher, event_key

TENANT = "demo"


class RecordingPublisher(SessionEventPublisher):
    """The real publisher's credential-taking methods, with `publish` kept instead of sent."""

    def __init__(self) -> None:
        super().__init__(connection("127.0.0.1:1"))  # never started: nothing connects
        self.sent: list[tuple[bytes, bytes]] = []

    async def publish(self, event: Event) -> None:
        self.sent.append((event_key(event), encode(event)))


@pytest.fixture
def credentials(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every credential the demo makes up, in order."""
    made: list[str] = []
    real: Callable[[int], str] = secrets.token_urlsafe

    def recording(nbytes: int) -> str:
        token = real(nbytes)
        made.append(token)
        return token

    monkeypatch.setattr(secrets, "token_urlsafe", recording)  # the module demo_traffic uses
    return made


async def test_demo_traffic_publishes_handles_never_credentials(credentials: list[str]) -> None:
    publisher = RecordingPublisher()
    traffic = asyncio.create_task(
        demo_traffic.run_demo_traffic(
            publisher, TENANT, count=12, activity_every_seconds=0.01, seed=3
        )
    )
    try:
        for _ in range(500):
            if len(publisher.sent) >= 12 + 10:  # the sessions, then two rounds of activity
                break
            await asyncio.sleep(0.01)
    finally:
        traffic.cancel()
        await asyncio.wait([traffic])
    events = [decode(EVENTS, value) for _, value in publisher.sent]

    assert len(credentials) == 12 and len(set(credentials)) == 12
    assert all(len(c) >= 43 for c in credentials)  # 256 random bits each
    handles = {session_handle(TENANT, c) for c in credentials}
    created = [e for e in events if isinstance(e, SessionCreated)]
    assert {e.session_id for e in created} == handles and len(created) == 12
    active = [e for e in events if isinstance(e, SessionActivity)]
    assert len(active) >= 10 and {e.session_id for e in active} <= handles
    assert len(created) + len(active) == len(events)
    for (key, value), event in zip(publisher.sent, events, strict=True):
        assert is_handle(event.session_id) and event.tenant_id == TENANT
        assert key == record_key(TENANT, event.session_id)
        assert f'"schema_version":{SCHEMA_VERSION}'.encode() in value
        assert not any(c.encode() in key + value for c in credentials)
