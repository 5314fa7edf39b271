"""Page cursors are signed: a forged, altered or foreign cursor is 422 naming `cursor`.

A forged cursor used to make the list report `total: 999999`. Decided here: a cursor is valid
only with the tenant, filter and sort it was issued for (a cursor of another tenant could
carry that tenant's total, and one of another filter its count and position), so any other
use is refused rather than silently mis-paged; and it opens in every worker of the API.
"""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import httpx
import pytest
from admin_api_support import (
    NOW,
    OTHER_TENANT,
    RecordingBus,
    handle,
    insert,
    make_settings,
    session_row,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import create_app
from admin_api.settings import AdminApiSettings
from asgi_served import served

LIST = "/api/v1/sessions"
AUDIT = "/api/v1/audit/terminations"


def _named_cursor(response: httpx.Response) -> bool:
    return response.status_code == 422 and any(
        e["loc"][:2] == ["query", "cursor"] for e in response.json()["detail"]
    )


def _payload(cursor: str) -> tuple[dict[str, Any], str]:
    payload, mac = cursor.split(".")
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))), mac


def _b64(body: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(body).encode()).decode().rstrip("=")


@pytest.fixture
async def listed(engine: AsyncEngine) -> None:
    """Five sessions of TENANT, five of OTHER_TENANT."""
    await insert(engine, [session_row() for _ in range(5)])
    await insert(engine, [session_row(tenant_id=OTHER_TENANT) for _ in range(5)])


async def _first_page(
    client: httpx.AsyncClient, auth: dict[str, str], **params: Any
) -> dict[str, Any]:
    response = await client.get(LIST, params={"limit": 2, **params}, headers=auth)
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["next_cursor"], page
    return page


@pytest.mark.usefixtures("listed")
async def test_a_forged_total_is_422_and_never_reported(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cursor = (await _first_page(client, auth))["next_cursor"]
    body, mac = _payload(cursor)
    assert body["t"] == 5
    for forged in (_b64({**body, "t": 999999}) + "." + mac, _b64({**body, "t": 999999})):
        response = await client.get(LIST, params={"cursor": forged}, headers=auth)
        assert _named_cursor(response), response.text
        assert "999999" not in response.text.replace(forged, "")
    honest = await client.get(LIST, params={"limit": 2, "cursor": cursor}, headers=auth)
    assert honest.status_code == 200 and honest.json()["total"] == 5


@pytest.mark.usefixtures("listed")
async def test_altered_sort_key_values_are_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    for sort in ("-last_activity_at", "user_name", "ip_address"):
        cursor = (await _first_page(client, auth, sort=sort))["next_cursor"]
        body, mac = _payload(cursor)
        changes: list[dict[str, Any]] = [{"id": handle("altered")}, {"v": ""}]
        if sort == "ip_address":
            changes.append({"v": "00" * 16})
        for change in changes:
            altered = _b64({**body, **change}) + "." + mac
            response = await client.get(
                LIST, params={"sort": sort, "cursor": altered}, headers=auth
            )
            assert _named_cursor(response), (sort, change, response.text)


@pytest.mark.usefixtures("listed")
async def test_a_cursor_of_another_tenant_is_422_and_leaks_nothing(
    client: httpx.AsyncClient, auth: dict[str, str], token: Callable[..., str]
) -> None:
    other = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT)}"}
    theirs = (await _first_page(client, other))["next_cursor"]
    response = await client.get(LIST, params={"cursor": theirs}, headers=auth)
    assert _named_cursor(response), response.text
    assert "items" not in response.json()


@pytest.mark.usefixtures("listed")
async def test_a_cursor_for_another_filter_or_sort_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cursor = (await _first_page(client, auth, session_type="browser"))["next_cursor"]
    elsewhere: list[dict[str, Any]] = [
        {},
        {"session_type": "mobile"},
        {"session_type": "browser", "q": "User"},
        {"session_type": "browser", "sort": "last_activity_at"},
        {"session_type": "browser", "sort": "user_name"},
        {"session_type": "browser", "created_from": (NOW - timedelta(days=1)).isoformat()},
    ]
    for params in elsewhere:
        response = await client.get(LIST, params={**params, "cursor": cursor}, headers=auth)
        assert _named_cursor(response), (params, response.text)
    same = await client.get(
        LIST, params={"session_type": "browser", "limit": 2, "cursor": cursor}, headers=auth
    )
    assert same.status_code == 200, same.text


@pytest.mark.parametrize(
    "garbage",
    ["!!!", "abc", "a.b", ".", _b64([1, 2]), _b64({"v": "a", "id": "b", "t": 1}), "x" * 4096],
)
async def test_truncated_or_garbage_cursors_are_422(
    client: httpx.AsyncClient, auth: dict[str, str], garbage: str
) -> None:
    for path in (LIST, AUDIT):
        response = await client.get(path, params={"cursor": garbage[:512]}, headers=auth)
        assert _named_cursor(response), (path, response.text)


@pytest.mark.usefixtures("listed")
async def test_every_truncation_of_a_real_cursor_is_422(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    cursor = (await _first_page(client, auth))["next_cursor"]
    for end in range(1, len(cursor), 7):
        response = await client.get(LIST, params={"cursor": cursor[:end]}, headers=auth)
        assert _named_cursor(response), (end, response.text)


async def _audit_cursor(client: httpx.AsyncClient, headers: dict[str, str], **params: Any) -> str:
    for _ in range(3):
        posted = await client.post(
            "/api/v1/sessions/terminations", json={"session_ids": [handle("x")]}, headers=headers
        )
        assert posted.status_code == 202
    page = (await client.get(AUDIT, params={"limit": 1, **params}, headers=headers)).json()
    cursor: str = page["next_cursor"]
    assert cursor
    return cursor


async def test_audit_cursors_are_signed_for_their_tenant_and_range(
    client: httpx.AsyncClient, auth: dict[str, str], token: Callable[..., str]
) -> None:
    cursor = await _audit_cursor(client, auth)
    assert (await client.get(AUDIT, params={"cursor": cursor}, headers=auth)).status_code == 200
    body, mac = _payload(cursor)
    for change in ({"id": "00000000-0000-0000-0000-000000000000"}, {"at": NOW.isoformat()}):
        altered = _b64({**body, **change}) + "." + mac
        response = await client.get(AUDIT, params={"cursor": altered}, headers=auth)
        assert _named_cursor(response), response.text
    other = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT)}"}
    response = await client.get(AUDIT, params={"cursor": cursor}, headers=other)
    assert _named_cursor(response), response.text
    for params in ({"requested_by": "admin-1"}, {"since": NOW.isoformat()}):
        response = await client.get(AUDIT, params={**params, "cursor": cursor}, headers=auth)
        assert _named_cursor(response), (params, response.text)


@pytest.mark.usefixtures("listed")
async def test_a_list_cursor_is_not_an_audit_cursor_nor_the_reverse(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    list_cursor = (await _first_page(client, auth))["next_cursor"]
    audit_cursor = await _audit_cursor(client, auth)
    response = await client.get(AUDIT, params={"cursor": list_cursor[:512]}, headers=auth)
    assert _named_cursor(response), response.text
    response = await client.get(LIST, params={"cursor": audit_cursor}, headers=auth)
    assert _named_cursor(response), response.text


@asynccontextmanager
async def _worker(settings: AdminApiSettings) -> AsyncIterator[httpx.AsyncClient]:
    app = create_app(settings, bus=RecordingBus(), clock=lambda: NOW)
    async with served(app) as c:
        yield c


@pytest.mark.usefixtures("listed")
async def test_pages_continue_on_another_worker_of_the_same_deployment(
    settings: AdminApiSettings, auth: dict[str, str]
) -> None:
    """Two apps built from the same settings, as `uvicorn --workers 2` builds them."""
    async with _worker(settings) as first, _worker(settings) as second:
        page = await _first_page(first, auth, sort="user_name")
        seen = [item["session_id"] for item in page["items"]]
        cursor = page["next_cursor"]
        workers = [second, first]
        answered = {id(first): 1, id(second): 0}
        while cursor:
            worker = workers[sum(answered.values()) % 2]
            answered[id(worker)] += 1
            response = await worker.get(
                LIST, params={"sort": "user_name", "limit": 2, "cursor": cursor}, headers=auth
            )
            assert response.status_code == 200, response.text
            seen += [item["session_id"] for item in response.json()["items"]]
            cursor = response.json()["next_cursor"]
        assert len(seen) == len(set(seen)) == 5
        assert answered == {id(first): 2, id(second): 1}  # page 2 on the second, 3 on the first


async def test_production_without_a_shared_cursor_key_refuses_to_start(db_url: str) -> None:
    """JWKS-only tokens leave no HS256 key to derive the cursor key from: say what to set."""
    jwks_only = make_settings(
        db_url,
        environment="production",
        jwks_url="https://idp.invalid/jwks",
        jwt_issuer="https://idp.invalid",
    )
    app = create_app(jwks_only, bus=RecordingBus())
    with pytest.raises(ValueError, match="SESSIONS_CURSOR_SECRET"):
        async with app.router.lifespan_context(app):
            pass
    shared = make_settings(
        db_url,
        environment="production",
        jwks_url="https://idp.invalid/jwks",
        jwt_issuer="https://idp.invalid",
        cursor_secret="c" * 40,
    )
    app = create_app(shared, bus=RecordingBus())
    async with app.router.lifespan_context(app):
        pass


@pytest.mark.usefixtures("listed")
async def test_a_rotated_cursor_secret_opens_the_old_ones_cursors_until_it_is_dropped(
    db_url: str, auth: dict[str, str]
) -> None:
    """Rotating the cursor secret without a 422 for every admin paging at the time: the new
    secret first in SESSIONS_CURSOR_SECRETS signs, the old one after it still opens."""
    old, new = "o" * 40, "n" * 40
    async with _worker(make_settings(db_url, cursor_secret=old)) as before:
        page = await _first_page(before, auth, sort="user_name")
    params = {"sort": "user_name", "limit": 2, "cursor": page["next_cursor"]}
    async with _worker(make_settings(db_url, cursor_secrets=f"{new}, {old}")) as rotating:
        response = await rotating.get(LIST, params=params, headers=auth)
        assert response.status_code == 200, response.text
        second = response.json()
    first_ids = {item["session_id"] for item in page["items"]}
    assert second["items"] and not first_ids & {i["session_id"] for i in second["items"]}
    assert second["total"] == page["total"] == 5
    async with _worker(make_settings(db_url, cursor_secret=new)) as after:
        response = await after.get(LIST, params=params, headers=auth)
        assert _named_cursor(response), response.text  # the old secret dropped: its cursors end
        signed_by_new = {**params, "cursor": second["next_cursor"]}
        response = await after.get(LIST, params=signed_by_new, headers=auth)
        assert response.status_code == 200, response.text
