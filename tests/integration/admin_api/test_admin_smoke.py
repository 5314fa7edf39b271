"""First path through the app: a row in, the list out."""

from __future__ import annotations

import httpx
from admin_api_support import handle, insert, session_row
from sqlalchemy.ext.asyncio import AsyncEngine


async def test_lists_an_inserted_session(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    await insert(engine, [session_row(session_id=handle("abc"))])
    response = await client.get("/api/v1/sessions", headers=auth)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["total"] == 1
    assert [i["session_id"] for i in body["items"]] == [handle("abc")]
