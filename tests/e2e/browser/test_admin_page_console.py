"""The admin page as a console admins trust (issue 17): live mode moves no row, the table fits a
laptop whatever the data, bulk termination is guarded and its count binding, one user's
sessions and "Sign out everywhere"."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
from admin_stack import Stack
from playwright.async_api import Browser, Locator, Page, expect

from session_contracts.models import SessionPolicy, SessionType

pytestmark = [pytest.mark.browser, pytest.mark.kafka]


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


def select_box(page: Page, session_id: str) -> Locator:
    return page.locator(f'#rows tr[data-session-id="{session_id}"] input.row-select')


async def row_ids(page: Page) -> list[str]:
    ids: list[str] = await rows(page).evaluate_all("rs => rs.map(r => r.dataset.sessionId)")
    return ids


async def test_live_mode_announces_changes_and_moves_no_row(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    first = await stack.publish(
        [
            stack.session(tenant, f"Person {n}", created_ago=timedelta(minutes=10 + n))
            for n in range(4)
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(4)
    await expect(page.locator("#updated")).to_have_text(re.compile(r"^Updated \d+ (s|min) ago$"))
    before = await row_ids(page)
    await select_box(page, first[2].session_id).check()
    await page.locator("#live-mode").check()

    # a newer session sorts to the top of "Last Activity, newest first": every row would move
    (newest,) = await stack.publish([stack.session(tenant, "Newcomer", created_ago=timedelta())])
    pending = page.get_by_role("button", name=re.compile(r"^\d+ sessions? changed — show$"))
    await expect(pending).to_be_visible()
    assert await row_ids(page) == before  # nothing moved under the admin
    await expect(select_box(page, first[2].session_id)).to_be_checked()
    await expect(page.locator("#updated")).to_have_text(re.compile(r"^Updated \d+ (s|min) ago$"))

    await pending.click()
    await expect(rows(page)).to_have_count(5)
    assert (await row_ids(page))[0] == newest.session_id
    await expect(select_box(page, first[2].session_id)).to_be_checked()
    await expect(pending).to_be_hidden()
    await expect(page.get_by_role("status")).to_have_text("The list now shows the latest changes.")


async def test_the_table_fits_1280_px_whatever_the_data(stack: Stack, browser: Browser) -> None:
    tenant = stack.tenant()
    long_name = "W" * 250
    odd = SessionPolicy(max_session_seconds=3 * 86400, idle_timeout_seconds=3600)
    events = [
        stack.session(tenant, long_name, policy=odd, device="D" * 64),
        *(stack.session(tenant, f"Filler {n}", policy=odd) for n in range(40)),
    ]
    await stack.publish(events)
    context = await browser.new_context(
        viewport={"width": 1280, "height": 800}, locale="en-US", timezone_id="UTC"
    )
    await context.grant_permissions(["clipboard-read", "clipboard-write"])
    page = await context.new_page()
    try:
        await page.goto(stack.page_url(tenant.token))
        await expect(page.locator("#table-summary")).to_have_text("Showing 41 of 41 sessions")
        # every column on: no sideways scrolling, every header inside the window
        assert await page.evaluate("document.documentElement.scrollWidth") <= 1280
        headers = page.locator("#header-row th")
        await expect(headers).to_have_count(10)  # select-all and nine columns
        for n in range(10):
            box = await headers.nth(n).bounding_box()
            assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 1280, n

        row = page.locator(f'#rows tr[data-session-id="{events[0].session_id}"]')
        name = row.locator(".name-cell .link-button")
        await expect(name).to_have_attribute("title", long_name)
        await expect(row.locator(".badge")).to_have_text("Outdated settings")
        short = row.locator(".id-cell .mono")
        await expect(short).to_have_text(events[0].session_id[:10] + "…")
        await expect(short).to_have_attribute("title", events[0].session_id)
        await row.get_by_role("button", name=re.compile("^Copy Session ID")).click()
        assert await page.evaluate("navigator.clipboard.readText()") == events[0].session_id
        await expect(page.get_by_role("status")).to_contain_text("Session ID copied")

        # the header stays visible when the page scrolls
        await page.evaluate("window.scrollTo(0, 1500)")
        await page.wait_for_function("window.scrollY > 500")
        top = await headers.nth(1).bounding_box()
        assert top is not None and -1 <= top["y"] <= 1

        # the confirmation shows name, type and id in full, inside the dialog
        await page.evaluate("window.scrollTo(0, 0)")
        await row.locator("input.row-select").check()
        await (
            page.get_by_role("region", name="Selected sessions")
            .get_by_role("button", name="Terminate")
            .click()
        )
        dialog = page.get_by_role("dialog", name="Terminate 1 session?")
        cells = dialog.locator("tbody tr td")
        await expect(cells).to_have_text([long_name, "Browser", events[0].session_id])
        frame = await dialog.bounding_box()
        assert frame is not None
        for n in range(3):
            box = await cells.nth(n).bounding_box()
            assert box is not None
            assert box["x"] >= frame["x"] and box["x"] + box["width"] <= frame["x"] + frame["width"]
        await dialog.get_by_role("button", name="Cancel").click()
    finally:
        await context.close()


async def test_terminate_all_matching_is_guarded(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    sessions = await stack.publish(
        [stack.session(tenant, name) for name in ("Ann One", "Ann Two", "Bob Three")]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    matching = page.locator("#terminate-matching")
    # not a permanent red button, and off while rows are selected
    assert await matching.evaluate("e => getComputedStyle(e).backgroundColor") != "rgb(180, 35, 24)"
    await select_box(page, sessions[0].session_id).check()
    await expect(matching).to_be_disabled()
    await page.get_by_role("button", name="Clear selection").click()
    await expect(matching).to_be_enabled()

    # nothing narrows the list: the count must be typed
    await matching.click()
    dialog = page.get_by_role("dialog", name="Terminate all 3 matching sessions?")
    await expect(dialog).to_contain_text("every active session of this instance")
    confirm = dialog.get_by_role("button", name="Terminate 3 sessions")
    await expect(confirm).to_be_disabled()
    await dialog.get_by_label("Type 3 to confirm").fill("2")
    await expect(confirm).to_be_disabled()
    await dialog.get_by_label("Type 3 to confirm").fill("3")
    await expect(confirm).to_be_enabled()
    await dialog.get_by_role("button", name="Cancel").click()
    async with stack.api(tenant) as api:
        assert (await api.get("/api/v1/sessions")).json()["total"] == 3


async def test_the_confirmed_count_is_binding(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    _, _, bob = await stack.publish(
        [stack.session(tenant, name) for name in ("Ann One", "Ann Two", "Bob Three")]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    await page.get_by_role("searchbox").fill("Ann")
    await expect(rows(page)).to_have_count(2)
    await expect(page).to_have_url(re.compile(r"\?q=Ann"))
    await page.locator("#terminate-matching").click()
    dialog = page.get_by_role("dialog", name="Terminate all 2 matching sessions?")
    await expect(dialog).to_contain_text("Search: “Ann”")
    await expect(dialog.get_by_label("Type 2 to confirm")).to_have_count(0)  # narrowed
    # another Ann signs in while the dialog is open
    (late,) = await stack.publish([stack.session(tenant, "Ann Late", created_ago=timedelta())])
    await dialog.get_by_role("button", name="Terminate 2 sessions").click()
    await expect(page.get_by_role("status")).to_have_text("2 sessions were ended.")
    async with stack.api(tenant) as api:
        left = (await api.get("/api/v1/sessions")).json()
        assert {s["session_id"] for s in left["items"]} == {late.session_id, bob.session_id}
        (entry,) = (await api.get("/api/v1/audit/terminations")).json()["items"]
        assert entry["requested"] == 2 and entry["terminated"] == 2


async def test_one_users_sessions_and_sign_out_everywhere(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    # one display name, two people
    mine = await stack.publish(
        [
            stack.session(tenant, "Sam Lee", user_id="u-sam-1"),
            stack.session(tenant, "Sam Lee", user_id="u-sam-1", session_type=SessionType.mobile),
        ]
    )
    (other,) = await stack.publish([stack.session(tenant, "Sam Lee", user_id="u-sam-2")])
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    await expect(page.locator("#header-row th[data-column='user_id']")).to_have_text("User ID")
    row = page.locator(f'#rows tr[data-session-id="{mine[0].session_id}"]')
    await row.get_by_role("button", name="Show all sessions of user u-sam-1").click()
    await expect(rows(page)).to_have_count(2)
    await expect(page.locator("#filter-chips")).to_contain_text("User ID: is “u-sam-1”")
    view = page.get_by_role("region", name="One user's sessions")
    await expect(view).to_contain_text("All sessions of user u-sam-1")
    assert "user_id=u-sam-1" in page.url

    await view.get_by_role("button", name="Sign out everywhere").click()
    dialog = page.get_by_role("dialog", name="Sign out user u-sam-1 everywhere?")
    await expect(dialog).to_contain_text("2 sessions match right now")
    await dialog.get_by_role("button", name="Sign out everywhere").click()
    await expect(page.get_by_role("status")).to_have_text("2 sessions were ended.")
    await expect(rows(page)).to_have_count(0)
    async with stack.api(tenant) as api:
        left = (await api.get("/api/v1/sessions")).json()
        assert [s["session_id"] for s in left["items"]] == [other.session_id]
        (entry,) = (await api.get("/api/v1/audit/terminations")).json()["items"]
        assert entry["target"] == {"filter": {"user_id": "u-sam-1"}}
