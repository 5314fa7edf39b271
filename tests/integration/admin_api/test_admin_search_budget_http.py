"""Over HTTP, on both backends: a tenant whose searches spent their time a minute gets 429.

`SESSIONS_SEARCH_SECONDS_PER_MINUTE` is set to a microsecond here, so the first search of a
tenant overdraws it (it runs to its end) and the next is refused with the time to wait, as the
OpenAPI document declares. (A thousandth of a second let a tenant's second request through
now and then: a search of a few rows on SQLite can take less than a millisecond.) Another
tenant's searches, and the tenant's own lists without a text condition, are served
meanwhile: the budget bounds searches, the requests that can read a tenant's every row, and
only the spending tenant's.
"""

from __future__ import annotations

from collections.abc import Callable

import httpx
import pytest
from admin_api_support import NOW, OTHER_TENANT, RecordingBus, insert, make_settings, session_row
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import create_app
from admin_api.settings import AdminApiSettings
from asgi_served import served


@pytest.fixture
def settings(db_url: str) -> AdminApiSettings:
    return make_settings(db_url, search_seconds_per_minute=1e-6)


async def test_a_tenant_past_its_search_budget_is_told_when_to_retry_and_no_one_else_is(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    token: Callable[..., str],
    settings: AdminApiSettings,
    bus: RecordingBus,
) -> None:
    await insert(
        engine,
        [
            session_row(user_name="Ada Lovelace"),
            session_row(user_name="Ada Byron", tenant_id=OTHER_TENANT),
        ],
    )
    ours = {"Authorization": f"Bearer {token()}"}
    theirs = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT)}"}
    search = {"q": "ada"}

    first = await client.get("/api/v1/sessions", params=search, headers=ours)
    assert first.status_code == 200, first.text
    assert [row["user_name"] for row in first.json()["items"]] == ["Ada Lovelace"]

    refused = await client.get("/api/v1/sessions", params=search, headers=ours)
    assert refused.status_code == 429, refused.text
    assert int(refused.headers["Retry-After"]) >= 1
    (detail,) = refused.json().values()
    assert "1e-06 s per minute" in detail and "retry in" in detail
    spec = create_app(settings, bus=RecordingBus()).openapi()
    assert "429" in spec["paths"]["/api/v1/sessions"]["get"]["responses"]

    export = await client.get("/api/v1/sessions/export.csv", params=search, headers=ours)
    assert export.status_code == 429 and "Retry-After" in export.headers
    assert (await client.get("/api/v1/sessions", headers=ours)).status_code == 200  # no text
    plain_export = await client.get("/api/v1/sessions/export.csv", headers=ours)
    assert plain_export.status_code == 200 and "Ada Lovelace" in plain_export.text

    # a termination by a filter with a text condition counts its matches as a search does;
    # the registry resolves that filter again in the transaction every tenant's events wait on
    terminate = "/api/v1/sessions/terminations"
    by_filter = await client.post(terminate, json={"filter": search}, headers=ours)
    assert by_filter.status_code == 429 and "Retry-After" in by_filter.headers, by_filter.text
    assert bus.commands == []  # nothing published
    (one,) = first.json()["items"]
    by_id = await client.post(terminate, json={"session_ids": [one["session_id"]]}, headers=ours)
    assert by_id.status_code == 202, by_id.text
    assert [c.session_ids for c in bus.commands] == [[one["session_id"]]]

    other = await client.get("/api/v1/sessions", params=search, headers=theirs)
    assert other.status_code == 200, other.text
    assert [row["user_name"] for row in other.json()["items"]] == ["Ada Byron"]
    # (that search spent globex's own budget:) a third tenant's termination by the filter
    # is accepted while the first two owe time
    third = {"Authorization": f"Bearer {token(tenant='initech')}"}
    accepted = await client.post(terminate, json={"filter": search}, headers=third)
    assert accepted.status_code == 202 and accepted.json()["requested"] == 0, accepted.text
    assert (
        await client.post(terminate, json={"filter": search}, headers=theirs)
    ).status_code == 429


async def test_terminations_by_a_text_filter_have_a_smaller_budget_of_their_own(
    engine: AsyncEngine, db_url: str, token: Callable[..., str]
) -> None:
    """The registry resolves a text filter again, in the transaction every tenant's events
    wait behind: one tenant's terminations by such filters may count for
    `SESSIONS_FILTER_TERMINATION_SECONDS_PER_MINUTE`, a microsecond here, while its searches
    keep the (default) search budget."""
    await insert(engine, [session_row(user_name="Ada Lovelace") for _ in range(2)])
    settings = make_settings(db_url, filter_termination_seconds_per_minute=1e-6)
    bus = RecordingBus()
    app = create_app(settings, bus=bus, clock=lambda: NOW)
    ours = {"Authorization": f"Bearer {token()}"}
    theirs = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT)}"}
    terminate = "/api/v1/sessions/terminations"
    by_text = {"filter": {"q": "ada"}}
    async with served(app) as c:
        first = await c.post(terminate, json=by_text, headers=ours)
        assert first.status_code == 202 and first.json()["requested"] == 2, first.text
        again = await c.post(terminate, json=by_text, headers=ours)
        assert again.status_code == 429 and int(again.headers["Retry-After"]) >= 1, again.text
        (detail,) = again.json().values()
        assert "terminations by a filter with a text condition" in detail
        assert len(bus.commands) == 1  # the refused one was not published
        # the tenant's searches, terminations without text and by id, and another tenant's
        # terminations by text are not refused
        assert (
            await c.get("/api/v1/sessions", params={"q": "ada"}, headers=ours)
        ).status_code == 200
        by_type = {"filter": {"session_type": ["browser"]}}
        assert (await c.post(terminate, json=by_type, headers=ours)).status_code == 202
        assert (await c.post(terminate, json=by_text, headers=theirs)).status_code == 202
    assert len(bus.commands) == 3
