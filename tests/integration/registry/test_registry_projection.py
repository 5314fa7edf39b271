"""The projection end to end on a real broker: events in, session rows out."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from registry_helpers import NOW, StartRegistry, activity, created, session_rows, sid

pytestmark = pytest.mark.kafka


async def test_created_and_activity_become_a_row(
    start_registry: StartRegistry, send: Callable[..., Awaitable[None]]
) -> None:
    registry = await start_registry()
    await send(created("s1"), activity("s1", NOW - timedelta(minutes=1)))
    await registry.wait_until_idle(30)
    rows = await session_rows(registry)
    row: dict[str, Any] = rows[sid("s1")]
    assert row["state"] == "open"
    assert row["user_id"] == "u1"
    assert row["device"] == "Chrome on macOS"
