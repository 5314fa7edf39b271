"""Waiting for a condition in tests: poll it, fail naming it after a generous deadline.

A deadline here is a bound on a hang, never a speed claim (speed is measured in bench/).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable


async def until(
    check: Callable[[], Awaitable[bool]],
    within: float,
    what: str = "condition",
    interval: float = 0.05,
) -> float:
    """Poll `check` until it holds; fail naming `what` after `within` seconds; the time taken."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > within:
            raise AssertionError(f"{what}: not within {within} s")
        await asyncio.sleep(interval)
    return time.monotonic() - started
