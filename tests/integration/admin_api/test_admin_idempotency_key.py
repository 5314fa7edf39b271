"""`Idempotency-Key` on a termination request: a retry is the same command.

A 503 that says "the change may still be applied" (Kafka took the command, its answer was lost)
left a client two choices: give up on a change that may not have happened, or ask again and get
a second command, which the registry applies to sessions the first already ended: the second's
status says it ended none (the secured cluster's broker-loss test failed on it, 2026-12-06). With
a key, the request sent again is the same command id, and the registry applies a (tenant,
command id) once. On both backends.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from admin_api_support import OTHER_TENANT, RecordingBus, handle, insert, session_row
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.tables import termination_requests

URL = "/api/v1/sessions/terminations"
BODY = {"session_ids": [handle("s-1"), handle("s-2")], "reason": "security"}


async def test_a_request_sent_again_with_its_key_is_the_same_command_and_one_request(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    token: Callable[..., str],
    bus: RecordingBus,
    engine: AsyncEngine,
) -> None:
    async def command_id(body: dict[str, Any], headers: dict[str, str]) -> str:
        response = await client.post(URL, json=body, headers=headers)
        assert response.status_code == 202, response.text
        return str(response.json()["command_id"])

    keyed = {**auth, "Idempotency-Key": "9b1f0c1e-retry-me"}
    first = await command_id(BODY, keyed)
    assert await command_id(BODY, keyed) == first  # a retry (its 202 lost): the same command
    assert [str(c.command_id) for c in bus.commands] == [first]  # recorded: not sent again
    async with engine.connect() as conn:
        rows = await conn.scalar(
            select(func.count()).where(termination_requests.c.command_id == first)
        )
    assert rows == 1  # one request in the audit trail
    status = await client.get(f"{URL}/{first}", headers=auth)
    assert status.status_code == 200 and status.json()["status"] == "pending"

    others = {
        # another body under the same key is another command, never one silently dropped
        await command_id({**BODY, "session_ids": [handle("s-1")]}, keyed),
        await command_id({**BODY, "reason": "admin"}, keyed),
        # another admin's, or another tenant's, key names its own
        await command_id(BODY, {"Authorization": f"Bearer {token(sub='admin-2')}", **_key()}),
        await command_id(BODY, {"Authorization": f"Bearer {token(tenant=OTHER_TENANT)}", **_key()}),
        # without a key, each request is a command of its own
        await command_id(BODY, auth),
        await command_id(BODY, auth),
    }
    assert len(others) == 6 and first not in others


def _key() -> dict[str, str]:
    return {"Idempotency-Key": "9b1f0c1e-retry-me"}


@pytest.mark.parametrize(
    "key",
    ["", "two words", "x" * 256, "tab\there", "caf\u00e9"],
    ids=["empty", "a space", "256 characters", "a tab", "not ASCII"],
)
async def test_a_key_not_of_1_to_255_visible_ascii_characters_is_422_and_publishes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus, key: str
) -> None:
    response = await client.post(
        URL,
        json=BODY,
        headers=[
            *((k.encode(), v.encode()) for k, v in auth.items()),
            (b"Idempotency-Key", key.encode()),
        ],
    )
    assert response.status_code == 422, response.text
    assert "Idempotency-Key" in response.text or "idempotency-key" in response.text
    assert bus.commands == []


async def test_a_filter_sent_again_with_its_key_is_answered_as_recorded_not_counted_again(
    client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus, engine: AsyncEngine
) -> None:
    """Counted again, a retry's count was what the first command had left (none, once applied)
    or took in sessions created since, which the command never ends: it overwrote the count
    the admin confirmed (found by a review, stop 65)."""
    await insert(engine, [session_row(session_type="mobile") for _ in range(3)])
    body = {"filter": {"session_type": ["mobile"]}}
    keyed = {**auth, "Idempotency-Key": "count-once"}
    first = await client.post(URL, json=body, headers=keyed)
    assert first.status_code == 202 and first.json()["requested"] == 3
    await insert(engine, [session_row(session_type="mobile") for _ in range(2)])
    again = await client.post(URL, json=body, headers=keyed)
    assert again.status_code == 202
    assert again.json() == first.json()  # the same command id, the count confirmed
    assert len(bus.commands) == 1
    status = await client.get(f"{URL}/{first.json()['command_id']}", headers=auth)
    assert status.json()["status"] == "pending"
    async with engine.connect() as conn:
        requested = await conn.scalar(select(termination_requests.c.requested))
    assert requested == 3


async def test_a_key_given_twice_is_422_and_publishes_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus
) -> None:
    """FastAPI takes the first of a repeated header, a proxy may take the last: two keys name
    no one request."""
    headers = [(k.encode(), v.encode()) for k, v in auth.items()]
    twice = [*headers, (b"Idempotency-Key", b"one"), (b"Idempotency-Key", b"two")]
    response = await client.post(URL, json=BODY, headers=twice)
    assert response.status_code == 422, response.text
    assert "given 2 times" in response.text and bus.commands == []
