"""The real stack for the admin page's browser tests, started once per test module.

Real Kafka (fresh prefixed topics), the registry consuming them into a SQLite read model, the
admin API (with the page) served by uvicorn on a free loopback port, and the demo service
behind the auth gateway. Every test takes a tenant of its own, so tests sharing a module's
stack never see each other's sessions.
"""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
from admin_stack import Demo, LogCapture, Stack, kafka_only, serve, wait_ready
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright, expect

import fresh_topics
from admin_api.app import create_app
from admin_api.settings import AdminApiSettings
from demo_service.app import create_app as create_demo_app
from demo_service.settings import DemoSettings
from devstack.scratch_databases import create_database, drop_database
from fresh_topics import connection
from session_contracts.publisher import SessionEventPublisher
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from session_registry.settings import RegistrySettings

# The machine is shared: give assertions room beyond Playwright's 5 s default.
expect.set_options(timeout=15_000)

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


@pytest.fixture(scope="module")
async def stack_topics(kafka_bootstrap: str) -> AsyncIterator[Topics]:
    """The contract's topics under a prefix of this module's own; deleted afterwards."""
    fresh = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=3)
    await fresh_topics.create(kafka_bootstrap, fresh)
    try:
        yield fresh
    finally:
        await fresh_topics.delete(kafka_bootstrap, fresh)


@pytest.fixture(scope="module")
async def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[str]:
    """SQLite by default; a fresh PostgreSQL database with SESSIONS_BROWSER_DB=postgres."""
    if os.environ.get("SESSIONS_BROWSER_DB", "sqlite") != "postgres":
        yield f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('stack') / 'sessions.db'}"
        return
    admin_url: str = request.getfixturevalue("postgres_admin_url")
    name = f"browser_{uuid.uuid4().hex[:12]}"
    url = await create_database(admin_url, name)
    try:
        yield url
    finally:
        await drop_database(admin_url, name)


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, stack_topics: Topics, database_url: str
) -> AsyncIterator[Stack]:
    """Registry, admin API with the page, demo service and a publisher, on real Kafka."""
    common: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "topic_prefix": stack_topics.prefix,
        "topic_partitions": stack_topics.partitions,
        "database_url": database_url,
    }
    # a group of its own: a shared group id would rebalance with other suites' registries
    group = f"admin-page-{uuid.uuid4().hex[:8]}"
    registry = Registry.from_settings(RegistrySettings(consumer_group=group, **common))
    await registry.start()
    settings = AdminApiSettings(environment="development", **common)
    app = create_app(settings)  # the page's router included by the admin API
    logs = LogCapture()
    server, task, base_url = await serve(app, logs)
    publisher = SessionEventPublisher(connection(kafka_bootstrap, stack_topics))
    await publisher.start()
    built = Stack(base_url, app, settings, registry, publisher, stack_topics, logs)
    demo_tenant = built.tenant()
    demo_app = create_demo_app(
        DemoSettings(gateway_tenant_id=demo_tenant.tenant_id, **kafka_only(common))
    )
    demo_server, demo_task, demo_url = await serve(demo_app, logs)
    built.demo = Demo(demo_url, demo_tenant, demo_app)
    try:
        await wait_ready(demo_url)
        yield built
    finally:
        demo_server.should_exit = True
        await demo_task
        await publisher.stop()
        server.should_exit = True
        await task
        await registry.stop()
        for name in ("uvicorn.access", "uvicorn.error"):
            logging.getLogger(name).removeHandler(logs)


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Browser]:
    """Debian's Chromium, headless, driven by Playwright."""
    async with async_playwright() as playwright:
        chromium = await playwright.chromium.launch(
            executable_path=os.environ.get("SESSIONS_CHROMIUM", "/usr/bin/chromium"),
            args=CHROMIUM_ARGS,
        )
        try:
            yield chromium
        finally:
            await chromium.close()


@pytest.fixture
async def context(browser: Browser) -> AsyncIterator[BrowserContext]:
    """A fresh browser profile (storage, cookies) in a fixed locale and time zone."""
    ctx = await browser.new_context(
        locale="en-US", timezone_id="Asia/Kathmandu", viewport={"width": 1400, "height": 900}
    )
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        await ctx.close()


@pytest.fixture
async def page(context: BrowserContext) -> AsyncIterator[Page]:
    """A page that fails the test on any uncaught script error or dialog (alert)."""
    tab = await context.new_page()
    errors: list[str] = []
    tab.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))

    async def refuse_dialog(dialog: Dialog) -> None:
        errors.append(f"script dialog: {dialog.message}")
        await dialog.dismiss()

    tab.on("dialog", refuse_dialog)
    yield tab
    assert errors == [], errors
