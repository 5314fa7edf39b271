"""In Chromium, on a cluster whose `sessions.events` is dated by its producers (CreateTime: a
topic made before the contract dated it by the broker, or by a platform leaving that setting
out): a creation dated ahead is taken as dated, and the page shows what that means."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from admin_stack import Stack, terminate_the_contractors
from playwright.async_api import Locator, Page, expect

import fresh_topics
from session_contracts.topics import Topics

pytestmark = [pytest.mark.browser, pytest.mark.kafka]


@pytest.fixture(scope="module")
async def stack_topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    """The contract's topics under a prefix of this module's own, `sessions.events` CreateTime."""
    fresh = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=3)
    producer_dated = {fresh.events: {"message.timestamp.type": "CreateTime"}}
    await fresh_topics.create(kafka_bootstrap, fresh, producer_dated)
    try:
        yield fresh
    finally:
        await fresh_topics.delete(kafka_bootstrap, fresh)


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


def names(page: Page) -> Locator:
    return page.locator("#rows tr .name-cell .link-button")


async def test_a_session_dated_ahead_is_marked_and_left_by_terminate_all_matching(
    stack: Stack, page: Page
) -> None:
    # the platform's clock ten minutes ahead: the session is active and listed, but a filter
    # ends only sessions created no later than the confirmed count (docs/security.md)
    tenant = await stack.one_dated_ahead()
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    ahead = rows(page).filter(has_text="Contractor Ahead")
    await expect(ahead.locator(".name-cell .badge")).to_have_text("Dated ahead")
    await expect(rows(page).filter(has_text="Contractor Now").locator(".badge")).to_have_count(0)
    await ahead.locator(".name-cell .link-button").click()
    details = page.get_by_role("dialog").locator("dl.detail-list")
    await expect(details).to_contain_text(
        "Dated aheadIts creation is dated after the list was read: Terminate all matching"
    )
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)
    await rows(page).filter(has_text="Contractor Now").locator(".name-cell .link-button").click()
    await expect(details).to_contain_text("Created")
    await expect(details).not_to_contain_text("Dated ahead")
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)

    await terminate_the_contractors(page)
    await expect(page.get_by_role("status")).to_have_text(
        "1 session was ended of the 2 confirmed: the others had ended meanwhile, or are dated"
        " after the count (marked “Dated ahead”: terminate those on their own)."
    )
    await expect(names(page)).to_have_text(["Contractor Ahead"])

    # on its own, by id, it ends
    await ahead.locator(".row-select").check()
    await page.get_by_role("button", name="Terminate", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name="Terminate", exact=True).click()
    await expect(rows(page)).to_have_count(0)
    await page.get_by_role("searchbox").fill("")
    await expect(names(page)).to_have_text(["Employee One"])
