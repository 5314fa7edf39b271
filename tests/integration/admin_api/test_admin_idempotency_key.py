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
from admin_api_support import OTHER_TENANT, RecordingBus, handle
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
    assert await command_id(BODY, keyed) == first  # a retry: the same command, published again
    assert [str(c.command_id) for c in bus.commands] == [first, first]
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
