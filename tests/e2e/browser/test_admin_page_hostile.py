"""Markup in a user's name, device or user agent is shown as text: nothing of it runs or renders.

The page fixture fails the test on any script error or dialog (`alert`); the test also looks for
the elements the markup would have made, and for the flag its scripts would have set.
"""

from __future__ import annotations

import pytest
from admin_stack import Stack
from playwright.async_api import Page, expect

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

NAME = '<img src=x onerror="window.__xss = 1; alert(1)">'
DEVICE = "<script>window.__xss = 2; alert(2)</script>"
AGENT = '<svg onload="window.__xss = 3; alert(3)"></svg><b>bold</b> \' OR 1=1 --'


async def test_markup_in_session_fields_renders_as_text_and_never_runs(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    event = stack.session(tenant, NAME, device=DEVICE).model_copy(update={"user_agent": AGENT})
    await stack.publish([event])

    await page.goto(stack.page_url(tenant.token))
    row = page.locator("#rows tr").first
    await expect(row).to_contain_text(NAME)
    await expect(row).to_contain_text(DEVICE)
    await row.locator(".name-cell .link-button").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("dl.detail-list")).to_contain_text(AGENT)
    await expect(dialog.locator("dl.detail-list")).to_contain_text(DEVICE)

    made = await page.evaluate(
        """() => ({
            flag: window.__xss ?? null,
            images: document.querySelectorAll('img[src="x"]').length,
            svgs: document.querySelectorAll("svg[onload]").length,
            bold: [...document.querySelectorAll("b")].filter(b => b.textContent === "bold").length,
            scripts: [...document.scripts].filter(s => s.textContent.includes("__xss")).length,
        })"""
    )
    assert made == {"flag": None, "images": 0, "svgs": 0, "bold": 0, "scripts": 0}
