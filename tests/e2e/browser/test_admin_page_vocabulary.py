"""The page's vocabulary: served from the Python definitions, presented (or not) by the page.

`/admin/vocabulary.json` must follow the sort whitelist, the list's filter model, the response
schema and the contract's listed session types; the page's `presentation.js` must know every
name it serves (run in Node, so a new sort key, column, filter or type fails here first); and a
name the page does not know is still shown in Chromium, labelled from its name.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from admin_stack import Stack
from fastapi import FastAPI
from playwright.async_api import Page, Route, expect

from admin_api.domain.listing import DEFAULT_SORT, SORT_FIELDS
from admin_api.entrypoints.list_params import FilterParams
from admin_api.entrypoints.schemas import SessionPublic
from admin_api.web import router
from admin_api.web.vocabulary import NOT_COLUMNS, build_vocabulary
from page_in_node import in_node
from session_contracts.models import Label, SessionType, Timestamp

ALL_COLUMNS = [
    "Name",
    "Session Type",
    "User ID",
    "Session ID",
    "IP Address",
    "Created",
    "Last Activity",
    "Expires",
    "Device",
]


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    app = FastAPI()
    app.include_router(router)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c


async def served(client: httpx.AsyncClient) -> dict[str, Any]:
    response = await client.get("/admin/vocabulary.json")
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    assert response.headers["x-content-type-options"] == "nosniff"
    data: dict[str, Any] = response.json()
    return data


async def test_the_vocabulary_is_the_python_definitions(client: httpx.AsyncClient) -> None:
    vocabulary = await served(client)
    assert vocabulary["sort"] == {"keys": list(SORT_FIELDS), "default": DEFAULT_SORT}
    assert vocabulary["session_types"] == ["browser", "mobile"]
    assert [f["name"] for f in vocabulary["filters"]] == list(FilterParams.model_fields)
    columns = [c["key"] for c in vocabulary["columns"]]
    assert columns == [f for f in SessionPublic.model_fields if f not in NOT_COLUMNS]
    assert set(SORT_FIELDS) <= set(columns)
    kinds = {c["key"]: c["kind"] for c in vocabulary["columns"]}
    assert kinds["created_at"] == "date-time" and kinds["session_type"] == "choice"
    filters = {f["name"]: f for f in vocabulary["filters"]}
    assert filters["created_from"]["column"] == "created_at"
    assert filters["created_from"]["bound"] == "from"
    assert filters["expires_to"]["bound"] == "to"
    assert filters["session_type"]["choices"] == ["browser", "mobile"]
    assert filters["user_name"]["max_length"] == 256
    assert filters["q"]["column"] is None and filters["policy_outdated"]["kind"] == "boolean"


async def test_the_vocabulary_is_public_and_the_same_for_everyone(
    client: httpx.AsyncClient,
) -> None:
    anonymous = await served(client)
    signed = await client.get(
        "/admin/vocabulary.json", headers={"Authorization": "Bearer not-even-a-token"}
    )
    assert signed.json() == anonymous


class RowWithLocation(SessionPublic):
    location: str | None


class FiltersWithLocation(FilterParams):
    location: Label | None = None
    seen_from: Timestamp | None = None


def grown_vocabulary() -> dict[str, Any]:
    """What the server would serve after Python gained a column, sort key, filter and type."""
    return build_vocabulary(
        row=RowWithLocation,
        filters=FiltersWithLocation,
        sort_fields=(*SORT_FIELDS, "location"),
        listed_types={SessionType.browser, SessionType.mobile, SessionType.desktop_app},
    ).model_dump(mode="json")


def test_new_python_definitions_reach_the_vocabulary() -> None:
    vocabulary = grown_vocabulary()
    location = next(c for c in vocabulary["columns"] if c["key"] == "location")
    assert location == {"key": "location", "kind": "text", "nullable": True, "sortable": True}
    assert "location" in vocabulary["sort"]["keys"]
    filters = {f["name"]: f for f in vocabulary["filters"]}
    assert filters["location"]["column"] == "location"
    assert filters["seen_from"]["column"] is None
    assert vocabulary["session_types"] == ["browser", "mobile", "desktop_app"]
    with pytest.raises(ValueError, match="no field of SessionPublic"):
        build_vocabulary(sort_fields=(*SORT_FIELDS, "nowhere"))


def page_presentation(vocabulary: dict[str, Any]) -> dict[str, list[str]]:
    """presentation.js's verdict on `vocabulary`, run in Node: unpresented and stale names."""
    verdict: dict[str, list[str]] = in_node(
        "presentation.js",
        "{unpresented: page.unpresented(data), stale: page.stalePresentation(data)}",
        vocabulary,
    )
    return verdict


async def test_the_page_presents_every_name_the_server_serves(client: httpx.AsyncClient) -> None:
    verdict = page_presentation(await served(client))
    assert verdict["unpresented"] == [], (
        "the server serves names the admin page has no presentation for: add them to "
        "services/admin_api/web/static/js/presentation.js"
    )
    assert verdict["stale"] == [], "presentation.js presents names the server no longer serves"


def test_the_presentation_check_catches_what_python_adds() -> None:
    verdict = page_presentation(grown_vocabulary())
    assert verdict["unpresented"] == [
        "column location",
        "session type desktop_app",
        "filter seen_from",
    ]


@pytest.mark.browser
@pytest.mark.kafka
async def test_the_page_knows_every_name_of_the_real_vocabulary(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Known Names")])
    await page.goto(stack.page_url(tenant.token))
    await expect(page.locator("#rows tr")).to_have_count(1)
    await expect(page.locator("#header-row th .column-label")).to_have_text(ALL_COLUMNS)
    assert await page.locator("html").get_attribute("data-unpresented") is None


@pytest.mark.browser
@pytest.mark.kafka
async def test_names_the_page_does_not_know_are_shown_labelled_from_their_names(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Fallback Person")])

    async def grown(route: Route) -> None:
        response = await route.fetch()
        vocabulary = await response.json()
        vocabulary["columns"].append(
            {"key": "user_agent", "kind": "text", "nullable": True, "sortable": False}
        )
        vocabulary["sort"]["keys"].append("user_rank")
        vocabulary["session_types"].append("desktop_app")
        for spec in vocabulary["filters"]:
            if spec["name"] == "session_type":
                spec["choices"].append("desktop_app")
        await route.fulfill(response=response, json=vocabulary)

    await page.route("**/admin/vocabulary.json", grown)
    await page.goto(stack.page_url(tenant.token))

    await expect(page.locator("#rows tr")).to_have_count(1)
    await expect(page.locator("#header-row th .column-label")).to_have_text(
        [*ALL_COLUMNS, "User Agent"]
    )
    await expect(page.get_by_role("button", name="10 Columns Selected of 10")).to_be_visible()
    header = page.locator('th[data-column="user_agent"]')
    await expect(header.locator("button")).to_have_count(0)  # not sortable, no filter
    await expect(page.locator("#rows tr td").last).to_have_text(
        "Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0"
    )
    told = await page.locator("html").get_attribute("data-unpresented") or ""
    for name in ("column user_agent", "sort key user_rank", "session type desktop_app"):
        assert name in told, told

    await page.get_by_role("button", name="Filter Session Type").click()
    dialog = page.get_by_role("dialog", name="Filter Session Type")
    await dialog.get_by_role("checkbox", name="Desktop App").check()
    async with page.expect_request(re.compile(r"/api/v1/sessions\?")) as sent:
        await dialog.get_by_role("button", name="Apply").click()
    assert "session_type=desktop_app" in (await sent.value).url
    await expect(page.locator("#list-state")).to_have_text(
        "No active sessions match the current search and filters."
    )
    await expect(page.get_by_role("group", name="Active filters")).to_contain_text(
        "Session Type: Desktop App"
    )


@pytest.mark.browser
@pytest.mark.kafka
async def test_without_its_vocabulary_the_page_says_so_and_recovers(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Patient Person")])
    requests: list[str] = []
    page.on("request", lambda request: requests.append(request.url))

    await page.route("**/admin/vocabulary.json", lambda route: route.fulfill(status=500))
    await page.goto(stack.page_url(tenant.token))
    state = page.locator("#list-state")
    await expect(state).to_contain_text(
        "The list's columns could not be loaded (vocabulary.json answered 500)."
    )
    assert not [url for url in requests if "/api/v1/" in url]

    await page.unroute("**/admin/vocabulary.json")
    await page.get_by_role("button", name="Try again").click()  # the link's token was kept
    await expect(page.locator("#rows tr")).to_have_count(1)
    await expect(page.locator("#header-row th .column-label")).to_have_text(ALL_COLUMNS)
