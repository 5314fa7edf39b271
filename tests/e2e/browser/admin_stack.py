"""Handles on the running stack of the browser tests: tenants, tokens, sessions, servers.

`conftest.py` starts it; tests use `Stack` to create sessions through the event path
(`SessionCreated` on Kafka, then `registry.wait_until_idle`) and to sign in.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI
from playwright.async_api import Page, expect

from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from admin_api.settings import AdminApiSettings
from session_contracts.handles import session_handle
from session_contracts.models import SessionCreated, SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry

BROWSER_POLICY = SessionPolicy(max_session_seconds=30 * 86400, idle_timeout_seconds=8 * 3600)
MOBILE_POLICY = SessionPolicy(max_session_seconds=180 * 86400, idle_timeout_seconds=30 * 86400)
IDLE_TIMEOUT = 60.0


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
        user_id: str | None = None,
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
            # contract v2: the event names the session by its handle, derived from a credential
            session_id=session_id
            or session_handle(tenant.tenant_id, f"sess-{n:05d}-{uuid.uuid4().hex[:10]}"),
            user_id=user_id or f"user-{user_name.lower().replace(' ', '-')[:40]}",
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

    async def one_dated_ahead(self) -> Tenant:
        """A new tenant with two contractors' sessions, "Contractor Ahead" dated ten minutes
        ahead by its producer (a clock off), and "Employee One"'s; published and applied."""
        tenant = self.tenant()
        await self.publish(
            [
                self.session(tenant, "Contractor Now"),
                self.session(tenant, "Contractor Ahead", created_ago=-timedelta(minutes=10)),
                self.session(tenant, "Employee One"),
            ]
        )
        return tenant

    def api(self, tenant: Tenant) -> httpx.AsyncClient:
        """An HTTP client of the admin API, signed in as `tenant`'s admin."""
        return httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": f"Bearer {tenant.token}"},
            timeout=30,
        )


async def terminate_the_contractors(page: Page) -> None:
    """On `Stack.one_dated_ahead`'s page: search "contractor" (its two sessions) and confirm
    Terminate all matching."""
    await terminate_all_matching(page, "contractor", 2)


async def terminate_all_matching(page: Page, search: str, count: int) -> None:
    """Search `search` (`count` sessions listed then) and confirm Terminate all matching."""
    await page.get_by_role("searchbox").fill(search)
    await expect(page.locator("#rows tr")).to_have_count(count)
    await page.get_by_role("button", name=f"Terminate all matching ({count})").click()
    dialog = page.get_by_role("dialog", name=f"Terminate all {count} matching sessions?")
    await dialog.get_by_role("button", name=f"Terminate {count} sessions").click()


async def serve(app: FastAPI, logs: LogCapture) -> tuple[uvicorn.Server, asyncio.Task[None], str]:
    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=0,
        log_config=None,
        access_log=True,
        lifespan="on",
        proxy_headers=False,  # the peer as it is, as devstack runs it (--no-proxy-headers)
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


def kafka_only(common: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in common.items() if k != "database_url"}


async def wait_ready(base_url: str) -> None:
    """The gateway admits traffic only once it has read the revocations topic to its end."""
    async with httpx.AsyncClient(base_url=base_url) as client:
        for _ in range(600):
            if (await client.get("/readyz")).status_code == 200:
                return
            await asyncio.sleep(0.1)
    raise RuntimeError(f"{base_url} never became ready")
