"""A real Chromium signs in to the demo service, browses, is revoked, and lands on sign-in."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from playwright.async_api import Browser, async_playwright

from demo_service.app import create_app
from demo_service.settings import DemoSettings
from session_contracts.topics import Topics

pytestmark = [pytest.mark.kafka, pytest.mark.browser]

Revoke = Callable[..., Awaitable[None]]
Serve = Callable[[Any], contextlib.AbstractAsyncContextManager[str]]
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture
async def chromium() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=os.environ.get("SESSIONS_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
            headless=True,
        )
        try:
            yield browser
        finally:
            await browser.close()


async def test_sign_in_browse_revoke_and_the_next_navigation_lands_on_sign_in(
    kafka_bootstrap: str, topics: Topics, serve: Serve, revoke: Revoke, chromium: Browser
) -> None:
    settings = DemoSettings(
        KAFKA_BOOTSTRAP_SERVERS=kafka_bootstrap,
        topic_prefix=topics.prefix,
        topic_partitions=topics.partitions,
        gateway_tenant_id="acme",
    )
    app = create_app(settings)
    async with serve(app) as url:
        await app.state.demo.gateway.wait_ready()
        page = await chromium.new_page()
        await page.goto(f"{url}/home")
        assert page.url == f"{url}/signin"  # not signed in yet

        await page.fill("#user_name", "Katherine Johnson")
        await page.click("#sign_in")
        await page.wait_for_url(f"{url}/home")
        assert "Katherine Johnson" in await page.inner_text("#who")
        await page.click("text=Reports")
        await page.wait_for_url(f"{url}/reports")
        assert await page.inner_text("h1") == "Reports"

        cookies = {c["name"]: c for c in await page.context.cookies()}
        session_id = cookies["sid"]["value"]
        assert cookies["sid"]["httpOnly"]
        assert app.state.demo.gateway.activity.tracked == 1

        await revoke(session_id)
        for _ in range(100):  # the revocation arrives within milliseconds; poll briefly
            if app.state.demo.gateway.is_revoked(session_id):
                break
            await page.wait_for_timeout(20)
        await page.click("text=Home")
        await page.wait_for_url(f"{url}/signin?ended=admin")
        assert await page.inner_text("h1") == "Sign in"
        assert "An administrator ended your session." in await page.inner_text("body")
        assert "sid" not in {c["name"] for c in await page.context.cookies()}

        await page.fill("#user_name", "Katherine Johnson")  # and signing in again works
        await page.click("#sign_in")
        await page.wait_for_url(f"{url}/home")
        assert "Katherine Johnson" in await page.inner_text("#who")
        if screenshot := os.environ.get("SESSIONS_SCREENSHOT"):
            await page.screenshot(path=screenshot)
