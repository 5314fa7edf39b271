"""A stop cancelled while `OutboxRelay.paused` waits for the relay in flight is not lost.

`paused` bounds its wait for the relay's lock. With `asyncio.wait_for` (Python 3.11), a
cancellation that arrived just as the lock was acquired was dropped: `wait_for` returned the
lock and the caller ran on as if never cancelled. A task that stops the registry is cancelled
that way on a second signal; it must end, and leave the lock free.
"""

from __future__ import annotations

import asyncio
from typing import Any, cast

import pytest

from session_registry.adapters.outbox import OutboxRelay


async def test_a_cancellation_as_the_relay_finishes_is_delivered_and_frees_the_lock() -> None:
    relay = OutboxRelay(cast(Any, None), cast(Any, None))
    lock = relay._lock
    await lock.acquire()  # a relay in flight
    steps_inside = 0

    async def stopping() -> None:
        nonlocal steps_inside
        async with relay.paused(30):
            for _ in range(5):  # a stop's work inside the pause, several loop turns
                steps_inside += 1
                await asyncio.sleep(0)

    task = asyncio.create_task(stopping())
    for _ in range(3):  # the stop is waiting for the lock
        await asyncio.sleep(0)
    assert not task.done()
    lock.release()  # the relay ends...
    await asyncio.sleep(0)  # ...the waiting acquire completes...
    task.cancel()  # ...and the stop is cancelled in that same turn
    with pytest.raises(asyncio.CancelledError):
        await task
    assert steps_inside < 5, "the cancellation was dropped: the stop ran to its end"
    assert not lock.locked()
