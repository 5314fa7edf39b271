"""The admin page at 1440, 1280 and 390 px (the docs' screenshots), and by keyboard alone."""

from __future__ import annotations

import os
import re
from datetime import timedelta
from pathlib import Path

import pytest
from admin_stack import Stack, Tenant
from playwright.async_api import Browser, Page, expect

from session_contracts.models import SessionCreated, SessionPolicy, SessionType

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

DOCS = Path(__file__).resolve().parents[3] / "docs"
PEOPLE = [
    ("Ada Lovelace", SessionType.browser, "Firefox on Linux", 3),
    ("Grace Hopper", SessionType.mobile, "iPhone 15", 25),
    ("Alan Turing", SessionType.browser, "Chrome on Windows", 40),
    (
        "Katherine Johnson-Goble-Moore of the Langley Research Center",
        SessionType.browser,
        "Safari on macOS",
        55,
    ),
    ("Edsger Dijkstra", SessionType.mobile, "Pixel 8", 70),
    ("Barbara Liskov", SessionType.browser, "Edge on Windows", 95),
    ("Margaret Hamilton", SessionType.mobile, "Galaxy S24 Ultra (SM-S928B) on Android 14", 130),
    ("Donald Knuth", SessionType.browser, "Chrome on macOS", 160),
]


async def publish_people(stack: Stack, tenant: Tenant) -> list[SessionCreated]:
    old = SessionPolicy(max_session_seconds=90 * 86400, idle_timeout_seconds=14 * 86400)
    return await stack.publish(
        [
            stack.session(
                tenant,
                name,
                session_type=kind,
                device=device,
                created_ago=timedelta(minutes=ago),
                policy=old if kind == SessionType.mobile and ago > 100 else None,
            )
            for name, kind, device, ago in PEOPLE
        ]
    )


@pytest.mark.parametrize("width", [1440, 1280, 390])
async def test_screenshot_fits_the_width(
    stack: Stack, browser: Browser, tmp_path: Path, width: int
) -> None:
    tenant = stack.tenant()
    events = await publish_people(stack, tenant)
    context = await browser.new_context(
        viewport={"width": width, "height": 820 if width > 400 else 844},
        locale="en-US",
        timezone_id="Europe/Berlin",
        device_scale_factor=1,
    )
    page = await context.new_page()
    try:
        await page.goto(stack.page_url(tenant.token))
        await expect(page.locator("#rows tr")).to_have_count(len(PEOPLE))
        for event in events[1:3]:
            await page.locator(f'#rows tr[data-session-id="{event.session_id}"] input').check()
        ribbon = page.get_by_role("region", name="Selected sessions")
        await expect(ribbon).to_contain_text("2 sessions selected")
        await expect(page.locator("#who")).to_contain_text("Signed in as admin-1")
        # nothing scrolls sideways, and the ribbon is one line
        assert await page.evaluate("document.documentElement.scrollWidth") <= width
        box = await ribbon.bounding_box()
        assert box is not None and box["height"] < 60 and box["x"] >= 0
        assert box["x"] + box["width"] <= width
        assert await ribbon.evaluate("e => e.scrollWidth <= e.clientWidth")  # nothing cut off
        await expect(ribbon.get_by_role("button", name=re.compile("^Clear"))).to_be_in_viewport(
            ratio=1
        )
        if width == 390:
            # a card per session: name, type and the rest are on screen without scrolling
            card = page.locator(f'#rows tr[data-session-id="{events[0].session_id}"]')
            for column in ("session_type", "last_activity_at", "expires_at", "device"):
                cell = card.locator(f'td[data-column="{column}"]')
                cell_box = await cell.bounding_box()
                assert cell_box is not None and cell_box["x"] + cell_box["width"] <= width, column
        await page.evaluate("window.scrollTo(0, 0)")  # checking a box scrolled it into view
        shot = tmp_path / f"admin-page-{width}.png"
        await page.screenshot(path=str(shot))
        assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        if os.environ.get("SESSIONS_UPDATE_SCREENSHOT") == "1":
            (DOCS / f"admin-page-{width}.png").write_bytes(shot.read_bytes())
        sort = page.get_by_label("Sort by", exact=True)
        if width == 390:
            # cards have no header to click: the sort is a select there
            await sort.select_option(label="Name ↓")
            await expect(page.locator("#rows tr .name-cell .link-button").first).to_have_text(
                "Margaret Hamilton"
            )
            await expect(page).to_have_url(re.compile(r"sort=-user_name"))
        else:
            await expect(sort).to_be_hidden()
    finally:
        await context.close()


async def test_terminate_by_keyboard_from_a_selected_row(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    events = await publish_people(stack, tenant)
    await page.goto(stack.page_url(tenant.token))
    await expect(page.locator("#rows tr")).to_have_count(len(PEOPLE))
    box = page.locator(f'#rows tr[data-session-id="{events[2].session_id}"] input.row-select')
    await box.focus()
    await page.keyboard.press("Space")
    await expect(box).to_be_checked()
    await expect(box).to_have_attribute("aria-keyshortcuts", "Delete")
    status = page.get_by_role("status")
    await expect(status).to_have_text("1 session selected. Press Delete to terminate it.")
    await page.keyboard.press("Delete")  # one key from the selected row
    dialog = page.get_by_role("dialog", name="Terminate 1 session?")
    await expect(dialog).to_be_visible()
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    await page.keyboard.press("Shift+Tab")
    await expect(dialog.get_by_role("button", name="Terminate")).to_be_focused()
    await page.keyboard.press("Enter")
    await expect(status).to_have_text("1 session was ended.")
    await expect(page.locator(f'#rows tr[data-session-id="{events[2].session_id}"]')).to_have_count(
        0
    )


async def test_delete_on_an_unselected_row_asks_for_that_session(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    events = await publish_people(stack, tenant)
    await page.goto(stack.page_url(tenant.token))
    name = page.locator(f'#rows tr[data-session-id="{events[4].session_id}"] .name-cell button')
    await name.focus()
    await page.keyboard.press("Delete")
    dialog = page.get_by_role("dialog", name="Terminate 1 session?")
    await expect(dialog.locator("tbody td").first).to_have_text(PEOPLE[4][0])
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(name).to_be_focused()


async def test_screenshots_of_the_settings_and_audit_pages(
    stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    tenant = stack.tenant()
    events = await publish_people(stack, tenant)
    async with stack.api(tenant) as api:
        ended = await api.post(
            "/api/v1/sessions/terminations",
            json={"session_ids": [events[0].session_id], "reason": "security"},
        )
        assert ended.status_code == 202
        await api.post(
            "/api/v1/sessions/terminations",
            json={"filter": {"user_name": "Barbara"}, "reason": "admin"},
        )
    await stack.registry.wait_until_idle(60)
    context = await browser.new_context(
        viewport={"width": 1280, "height": 700}, locale="en-US", timezone_id="Europe/Berlin"
    )
    page = await context.new_page()
    try:
        await page.goto(stack.page_url(tenant.token))
        await page.get_by_role("link", name="Session settings").click()
        await expect(page.locator(".settings-card")).to_have_count(2)
        await expect(page.locator('.settings-card[data-session-type="mobile"]')).to_contain_text(
            "1 active Mobile session of 3 was created under older settings"
        )
        await page.get_by_role("link", name="Audit log").click()
        await expect(page.locator("#audit-body tbody tr")).to_have_count(2)
        await expect(page.locator("#audit-body tbody tr").last).to_contain_text("Security concern")
        assert await page.evaluate("document.documentElement.scrollWidth") <= 1280
        for view in ("settings", "audit"):
            await page.get_by_role("link", name=re.compile(view, re.I)).click()
            await expect(page.locator(f"#view-{view}")).to_be_visible()
            shot = tmp_path / f"admin-page-{view}.png"
            await page.screenshot(path=str(shot))
            if os.environ.get("SESSIONS_UPDATE_SCREENSHOT") == "1":
                (DOCS / f"admin-page-{view}.png").write_bytes(shot.read_bytes())
    finally:
        await context.close()
