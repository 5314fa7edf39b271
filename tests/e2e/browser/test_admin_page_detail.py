"""Session detail, CSV export, infinite scroll, outdated settings, and the docs screenshot."""

from __future__ import annotations

import asyncio
import csv
import io
import re
from datetime import timedelta
from pathlib import Path

import pytest
from admin_stack import Stack, terminate_all_matching
from playwright.async_api import Download, Locator, Page, Route, expect

from session_contracts.handles import session_handle
from session_contracts.models import SessionPolicy, SessionType

pytestmark = [pytest.mark.browser, pytest.mark.kafka]


async def download_text(download: Download) -> str:
    path = await download.path()
    return await asyncio.to_thread(path.read_text, encoding="utf-8")


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


def names(page: Page) -> Locator:
    return page.locator("#rows tr .name-cell .link-button")


async def test_clicking_a_row_opens_details_and_lifecycle_history(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    (event,) = await stack.publish(
        [stack.session(tenant, "Hedy Lamarr", ip_address="198.51.100.23", device="Safari on macOS")]
    )
    await page.goto(stack.page_url(tenant.token))
    await rows(page).first.locator('td[data-column="ip_address"]').click()  # not a button

    dialog = page.get_by_role("dialog", name="Session of Hedy Lamarr")
    await expect(dialog).to_be_visible()
    details = dialog.locator("dl.detail-list")
    await expect(details).to_contain_text(event.session_id)
    await expect(details).to_contain_text("user-hedy-lamarr")
    await expect(details).to_contain_text("198.51.100.23")
    await expect(details).to_contain_text("Safari on macOS")
    await expect(details).to_contain_text("Max session length30 days")
    await expect(details).to_contain_text("Idle timeout8 hours")
    history = dialog.get_by_role("list", name="Lifecycle history")
    await expect(history.locator("li")).to_have_count(1)
    await expect(history.locator("li").first).to_contain_text("Created")
    await expect(history.locator("li time")).to_have_attribute("title", re.compile("GMT\\+5:45"))
    await dialog.get_by_role("button", name="Close").click()
    await expect(dialog).to_be_hidden()


async def test_export_downloads_the_current_view_as_csv(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    # one handle of 64 starts with "-", which the export prefixes with "'" (a spreadsheet
    # would run "-..." as a formula): one of each here, not left to chance
    dashed = next(
        h
        for h in (session_handle(tenant.tenant_id, f"export-{n}") for n in range(10_000))
        if h.startswith("-")
    )
    plain = next(
        h
        for h in (session_handle(tenant.tenant_id, f"plain-{n}") for n in range(100))
        if h[0] not in "=+-@"
    )
    await stack.publish(
        [
            stack.session(tenant, "Export Anna", session_id=plain),
            stack.session(
                tenant, "Export Bert", session_type=SessionType.mobile, session_id=dashed
            ),
        ]
    )
    await stack.publish([stack.session(tenant, "Someone Else")])
    await page.goto(stack.page_url(tenant.token))
    await page.get_by_role("searchbox").fill("export")
    await expect(rows(page)).to_have_count(2)
    await page.get_by_role("button", name=re.compile("^Name")).click()
    await expect(names(page)).to_have_text(["Export Anna", "Export Bert"])

    async with page.expect_download() as pending:
        await page.get_by_role("button", name="Export CSV").click()
    download = await pending.value
    assert download.suggested_filename.startswith("active-sessions-")
    assert download.suggested_filename.endswith(".csv")
    content = await download_text(download)
    table = list(csv.DictReader(io.StringIO(content)))
    assert [r["user_name"] for r in table] == ["Export Anna", "Export Bert"]
    assert [r["session_id"] for r in table] == [plain, "'" + dashed]
    assert [r["session_type"] for r in table] == ["browser", "mobile"]


async def test_long_lists_load_more_as_the_admin_scrolls(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    events = [
        stack.session(tenant, f"Person {n:03d}", created_ago=timedelta(minutes=n))
        for n in range(120)
    ]
    await stack.publish(events)
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(50)
    await expect(page.locator("#table-summary")).to_have_text("Showing 50 of 120 sessions")

    await page.locator("#scroll-sentinel").scroll_into_view_if_needed()
    await expect(rows(page)).to_have_count(100)
    await page.locator("#scroll-sentinel").scroll_into_view_if_needed()
    await expect(rows(page)).to_have_count(120)
    await expect(page.locator("#table-summary")).to_have_text("Showing 120 of 120 sessions")
    await expect(page.get_by_role("button", name="Load more")).to_be_hidden()
    shown = await names(page).all_inner_texts()
    assert shown == [f"Person {n:03d}" for n in range(120)]


async def test_outdated_settings_are_marked_filterable_and_terminable(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    old = await stack.publish(
        [stack.session(tenant, "Old Olga"), stack.session(tenant, "Old Otto")]
    )
    async with stack.api(tenant) as api:
        changed = await api.put(
            "/api/v1/settings/sessions/browser",
            json={"max_session_seconds": 7 * 86400, "idle_timeout_seconds": 3600},
        )
        assert changed.status_code == 200, changed.text
    new_policy = SessionPolicy(max_session_seconds=7 * 86400, idle_timeout_seconds=3600)
    await stack.publish([stack.session(tenant, "New Nina", policy=new_policy)])

    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    for event in old:
        row = page.locator(f'#rows tr[data-session-id="{event.session_id}"]')
        await expect(row.locator(".badge")).to_have_text("Outdated settings")
    await expect(page.locator("#rows tr", has_text="New Nina").locator(".badge")).to_have_count(0)

    await page.get_by_role("checkbox", name="Outdated settings only").check()
    await expect(names(page)).to_have_count(2)
    await expect(page.locator("#rows")).not_to_contain_text("New Nina")
    await expect(page.get_by_role("group", name="Active filters")).to_contain_text(
        "Outdated settings only"
    )

    await page.get_by_role("button", name="Terminate all matching (2)").click()
    dialog = page.get_by_role("dialog", name="Terminate all 2 matching sessions?")
    await expect(dialog).to_contain_text("Outdated settings only")
    await dialog.get_by_role("button", name="Terminate 2 sessions").click()
    await expect(page.get_by_role("status")).to_have_text("2 sessions were ended.")

    await page.get_by_role("button", name="Remove filter Outdated settings only").click()
    await expect(page.get_by_role("checkbox", name="Outdated settings only")).not_to_be_checked()
    await expect(names(page)).to_have_text(["New Nina"])


async def test_terminate_all_matching_a_search_says_how_many_ended_while_it_runs(
    stack: Stack, page: Page, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A termination by a search is applied in chunks beside the registry's loop: the page
    counts them up, then says how many ended. The registry is held after its first chunk."""
    tenant = stack.tenant()
    contractors = [stack.session(tenant, f"Contractor {n}") for n in range(3)]
    await stack.publish([*contractors, stack.session(tenant, "Employee One")])
    deferred = stack.registry.deferred
    relay = deferred._after_chunk
    first, release = asyncio.Event(), asyncio.Event()

    async def held() -> None:
        if relay is not None:
            await relay()
        if not first.is_set():
            first.set()
            await release.wait()

    monkeypatch.setattr(deferred, "_chunk", 2)
    monkeypatch.setattr(deferred, "_after_chunk", held)
    try:
        await page.goto(stack.page_url(tenant.token))
        await expect(rows(page)).to_have_count(4)
        await terminate_all_matching(page, "contractor", 3)
        status = page.get_by_role("status")
        await expect(status).to_have_text("Terminating 3 sessions… 2 ended so far.")
    finally:
        release.set()
    await expect(status).to_have_text("3 sessions were ended.")
    await expect(rows(page)).to_have_count(0)  # the list read again: the search matches none


async def test_screenshot_of_the_page_with_data(stack: Stack, page: Page, tmp_path: Path) -> None:
    tenant = stack.tenant()
    people = [
        ("Ada Lovelace", SessionType.browser, "Firefox on Linux", 12),
        ("Grace Hopper", SessionType.mobile, "iPhone 15", 25),
        ("Alan Turing", SessionType.browser, "Chrome on Windows", 40),
        ("Katherine Johnson", SessionType.browser, "Safari on macOS", 55),
        ("Edsger Dijkstra", SessionType.mobile, "Pixel 8", 70),
        ("Barbara Liskov", SessionType.browser, "Edge on Windows", 95),
        ("Margaret Hamilton", SessionType.mobile, "Galaxy S24", 130),
        ("Donald Knuth", SessionType.browser, "Chrome on macOS", 160),
    ]
    events = await stack.publish(
        [
            stack.session(
                tenant, name, session_type=kind, device=device, created_ago=timedelta(minutes=ago)
            )
            for name, kind, device, ago in people
        ]
    )
    async with stack.api(tenant) as api:
        await api.put(
            "/api/v1/settings/sessions/mobile",
            json={"max_session_seconds": 90 * 86400, "idle_timeout_seconds": 14 * 86400},
        )
    await page.set_viewport_size({"width": 1600, "height": 760})
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(len(people))
    for event in events[1:3]:
        await page.locator(f'#rows tr[data-session-id="{event.session_id}"] input').check()
    await expect(page.get_by_role("region", name="Selected sessions")).to_be_visible()
    await expect(page.locator("#rows .badge").first).to_be_visible()

    shot = tmp_path / "admin-page.png"
    await page.screenshot(path=str(shot))
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the docs' screenshots (1440, 1280, 390 px) come from test_admin_page_screens.py


async def test_an_export_refused_while_the_tenants_exports_are_busy_says_so(
    stack: Stack, page: Page
) -> None:
    """The admin API answers 429 `exports_busy` when the tenant already has as many exports
    streaming as it may (`SESSIONS_EXPORTS_PER_TENANT`): the page says that, not that searches
    spent their share."""
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Busy Export")])
    body = {"detail": "this tenant already has 2 CSV export(s) streaming", "reason": "exports_busy"}

    async def busy(route: Route) -> None:
        await route.fulfill(status=429, json=body, headers={"Retry-After": "5"})

    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(1)
    await page.route("**/api/v1/sessions/export.csv*", busy)
    await page.get_by_role("button", name="Export CSV").click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("already has as many exports in progress")
    await expect(status).not_to_contain_text("Searches in your organization")
