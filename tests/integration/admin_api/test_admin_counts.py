"""Totals stay exact as the registry changes rows: creation, termination, expiry, deletion."""

from __future__ import annotations

from datetime import timedelta

import httpx
from admin_api_support import NOW, handle, insert, session_row
from sqlalchemy import delete, update
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.tables import sessions


async def totals(client: httpx.AsyncClient, auth: dict[str, str]) -> tuple[int, int, int]:
    async def one(params: dict[str, str]) -> int:
        response = await client.get("/api/v1/sessions", params={**params, "limit": 1}, headers=auth)
        return int(response.json()["total"])

    return (
        await one({}),
        await one({"session_type": "browser"}),
        await one({"session_type": "mobile"}),
    )


async def test_totals_follow_every_kind_of_change(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    s = sessions.c
    await insert(
        engine,
        [session_row(session_id=handle(f"b{i}")) for i in range(5)]
        + [session_row(session_id=handle(f"m{i}"), session_type="mobile") for i in range(3)]
        + [session_row(session_id=handle("api"), session_type="api_client")]
        # activity seen before creation: not a session yet
        + [session_row(session_id=handle("early"), last_activity_at=NOW - timedelta(minutes=5))],
    )
    async with engine.begin() as conn:
        await conn.execute(
            update(sessions).where(s.session_id == handle("early")).values(created_at=None)
        )
    assert await totals(client, auth) == (8, 5, 3)
    async with engine.begin() as conn:
        await conn.execute(
            update(sessions).where(s.session_id == handle("b0")).values(state="terminated")
        )
        await conn.execute(
            update(sessions).where(s.session_id == handle("m0")).values(state="expired")
        )
        await conn.execute(
            update(sessions)
            .where(s.session_id == handle("early"))
            .values(created_at=NOW - timedelta(minutes=1))
        )
        await conn.execute(delete(sessions).where(s.session_id == handle("b1")))
        # activity: no change in membership
        await conn.execute(
            update(sessions).where(s.session_id == handle("b2")).values(last_activity_at=NOW)
        )
        # past expires_at, not swept yet: no longer active
        await conn.execute(
            update(sessions)
            .where(s.session_id == handle("m1"))
            .values(expires_at=NOW - timedelta(seconds=1))
        )
    assert await totals(client, auth) == (5, 4, 1)
    listed = await client.get("/api/v1/sessions", params={"limit": 500}, headers=auth)
    assert len(listed.json()["items"]) == 5
    assert {i["session_id"] for i in listed.json()["items"]} == {
        handle(c) for c in ("b2", "b3", "b4", "early", "m2")
    }
