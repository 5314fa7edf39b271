"""The real stack for the admin page's browser tests, started once per test module.

Real Kafka (fresh prefixed topics), the registry consuming them into a SQLite read model, the
admin API (with the page) served by uvicorn on a free loopback port, and the demo service
behind the auth gateway. Sessions are created through the event path: `SessionCreated` events
published to Kafka, then `registry.wait_until_idle`. Every test takes a tenant of its own, so
tests sharing a module's stack never see each other's sessions.
"""

from __future__ import annotations

import asyncio
import logging
import os
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Browser, BrowserContext, Dialog, Page, async_playwright

from admin_api.app import create_app
from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from admin_api.settings import AdminApiSettings
from admin_api.web import router as admin_page_router
from demo_service.app import create_app as create_demo_app
from demo_service.settings import DemoSettings
from session_contracts.kafka_admin import ensure_topics
from session_contracts.models import SessionCreated, SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from session_registry.settings import RegistrySettings

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]
BROWSER_POLICY = SessionPolicy(max_session_seconds=30 * 86400, idle_timeout_seconds=8 * 3600)
MOBILE_POLICY = SessionPolicy(max_session_seconds=180 * 86400, idle_timeout_seconds=30 * 86400)
IDLE_TIMEOUT = 60.0
ROOT = Path(__file__).resolve().parents[3]


class LogCapture(logging.Handler):
    """Keeps every formatted record of the loggers it is attached to."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


@dataclass
class Tenant:
    """A tenant of its own for one test, and an admin token for it."""

    tenant_id: str
    token: str


@dataclass
class Demo:
    """The demo platform service behind the auth gateway, serving one tenant."""

    base_url: str
    tenant: Tenant
    app: FastAPI

    async def wait_until_revoked(self, session_id: str) -> None:
        """Wait until the gateway has read the session's revocation record (no request made)."""
        gateway = self.app.state.demo.gateway
        for _ in range(int(IDLE_TIMEOUT / 0.05)):
            if gateway.is_revoked(session_id):
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the gateway never saw the revocation of {session_id}")


@dataclass
class Stack:
    """Handles on the running stack."""

    base_url: str
    app: FastAPI
    settings: AdminApiSettings
    registry: Registry
    publisher: SessionEventPublisher
    topics: Topics
    logs: LogCapture
    demo: Demo | None = None
    counter: int = field(default=0)

    def tenant(self, grants: Sequence[str] = (EDIT_USER_SESSIONS,)) -> Tenant:
        """A fresh tenant with a token of an admin who has `grants`."""
        tenant_id = f"t-{uuid.uuid4().hex[:12]}"
        return Tenant(tenant_id, self.token(tenant_id, grants))

    def token(
        self, tenant_id: str, grants: Sequence[str] = (EDIT_USER_SESSIONS,), ttl: int = 3600
    ) -> str:
        """A development token of admin `admin-1` in `tenant_id`."""
        return issue_dev_token(self.settings, "admin-1", tenant_id, list(grants), ttl)

    def page_url(self, token: str) -> str:
        """The sign-in link the main command prints: the page with the token in the fragment."""
        return f"{self.base_url}/admin#token={token}"

    def session(
        self,
        tenant: Tenant,
        user_name: str,
        *,
        session_type: SessionType = SessionType.browser,
        ip_address: str | None = None,
        created_ago: timedelta = timedelta(minutes=30),
        device: str | None = "Chrome on Linux",
        policy: SessionPolicy | None = None,
        session_id: str | None = None,
    ) -> SessionCreated:
        """A `session.created` event of `tenant` (not yet published)."""
        self.counter += 1
        n = self.counter
        if policy is None:
            policy = MOBILE_POLICY if session_type == SessionType.mobile else BROWSER_POLICY
        return SessionCreated(
            event_id=uuid.uuid4(),
            occurred_at=datetime.now(UTC) - created_ago,
            tenant_id=tenant.tenant_id,
            session_id=session_id or f"sess-{n:05d}-{uuid.uuid4().hex[:10]}",
            user_id=f"user-{user_name.lower().replace(' ', '-')[:40]}",
            user_name=user_name,
            session_type=session_type,
            ip_address=ip_address or f"10.{n % 250}.{(n // 250) % 250}.{n % 200 + 1}",
            user_agent="Mozilla/5.0 (X11; Linux x86_64) Chrome/126.0",
            device=device,
            policy=policy,
        )

    async def publish(self, events: Sequence[SessionCreated]) -> list[SessionCreated]:
        """Publish the events to Kafka and wait until the registry has applied them."""
        await self.publisher.publish_many(list(events))
        await self.registry.wait_until_idle(IDLE_TIMEOUT)
        return list(events)

    def api(self, tenant: Tenant) -> httpx.AsyncClient:
        """An HTTP client of the admin API, signed in as `tenant`'s admin."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {tenant.token}"},
            timeout=30,
        )


def _page_included(app: FastAPI) -> bool:
    return any(getattr(route, "path", None) == "/admin" for route in app.routes)


async def _serve(app: FastAPI, logs: LogCapture) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    config = uvicorn.Config(
        app, host="127.0.0.1", port=0, log_config=None, access_log=True, lifespan="on"
    )
    server = uvicorn.Server(config)
    for name in ("uvicorn.access", "uvicorn.error"):
        logging.getLogger(name).addHandler(logs)
        logging.getLogger(name).setLevel(logging.INFO)
    task = asyncio.create_task(server.serve())
    for _ in range(600):
        if server.started or task.done():
            break
        await asyncio.sleep(0.05)
    if not server.started:
        raise RuntimeError("uvicorn did not start")
    port = server.servers[0].sockets[0].getsockname()[1]
    return server, task, f"http://127.0.0.1:{port}"


def _kafka_only(common: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in common.items() if k != "database_url"}


async def _wait_ready(base_url: str) -> None:
    """The gateway admits traffic only once it has read the revocations topic to its end."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(600):
            if (await client.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base_url} never became ready")


@pytest.fixture(scope="module")
async def stack_topics(kafka_bootstrap: str) -> Topics:
    """The contract's topics under a prefix of this module's own."""
    fresh = Topics(prefix=f"t{uuid.uuid4().hex[:12]}.", partitions=3)
    await ensure_topics(kafka_bootstrap, fresh)
    return fresh


@pytest.fixture(scope="module")
async def stack(
    kafka_bootstrap: str, stack_topics: Topics, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Stack]:
    """Registry, admin API with the page, and a publisher, on real Kafka and SQLite."""
    database_url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('stack') / 'sessions.db'}"
    common: dict[str, Any] = {
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "topic_prefix": stack_topics.prefix,
        "topic_partitions": stack_topics.partitions,
        "database_url": database_url,
    }
    registry = Registry.from_settings(RegistrySettings(**common))
    await registry.start()
    settings = AdminApiSettings(environment="development", **common)
    app = create_app(settings)
    if not _page_included(app):
        app.include_router(admin_page_router)
    logs = LogCapture()
    server, task, base_url = await _serve(app, logs)
    publisher = SessionEventPublisher(kafka_bootstrap, stack_topics)
    await publisher.start()
    built = Stack(base_url, app, settings, registry, publisher, stack_topics, logs)
    demo_tenant = built.tenant()
    demo_app = create_demo_app(
        DemoSettings(gateway_tenant_id=demo_tenant.tenant_id, **_kafka_only(common))
    )
    demo_server, demo_task, demo_url = await _serve(demo_app, logs)
    built.demo = Demo(demo_url, demo_tenant, demo_app)
    try:
        await _wait_ready(demo_url)
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
