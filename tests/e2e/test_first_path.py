"""One session travels the whole path on a real broker, for SQLite and for PostgreSQL.

A platform service publishes `session.created`; the registry projects it; the admin API lists
it and accepts a termination; the registry applies the command, writes `session.terminated`
and a revocation; the demo service behind the auth gateway then refuses the session.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from aiokafka import AIOKafkaConsumer
from fastapi import FastAPI

from admin_api.app import create_app as create_admin_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from demo_service.app import create_app as create_demo_app
from demo_service.settings import DemoSettings
from read_model.database import upgrade_schema
from session_contracts.models import SessionCreated, SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher
from session_contracts.topics import Topics
from session_registry.bootstrap import Registry
from session_registry.settings import RegistrySettings

pytestmark = pytest.mark.kafka

TENANT = "acme"
SECRET = "e2e-" + "s" * 40


@asynccontextmanager
async def served(app: FastAPI, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    """An in-process client of `app` with its lifespan running."""
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


async def eventually(
    probe: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool],
    within: float = 30,
) -> httpx.Response:
    """Poll `probe` until `done` holds for its response (or `within` seconds pass)."""
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await probe()
        if done(result) or asyncio.get_running_loop().time() > deadline:
            return result
        await asyncio.sleep(0.05)


def created(session_id: str, session_type: SessionType, tenant: str = TENANT) -> SessionCreated:
    return SessionCreated(
        event_id=uuid.uuid4(),
        occurred_at=datetime.now(UTC) - timedelta(seconds=5),
        tenant_id=tenant,
        session_id=session_id,
        user_id="u-ada",
        user_name="Ada Lovelace",
        session_type=session_type,
        ip_address="203.0.113.7",
        user_agent="Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
        policy=SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=900),
    )


async def read_all(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        batches = await consumer.getmany(timeout_ms=3000)
        return [(r.key, r.value) for records in batches.values() for r in records]
    finally:
        await consumer.stop()


async def test_a_terminated_session_is_refused_at_the_next_request(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    kafka = {"kafka_bootstrap_servers": kafka_bootstrap, "topic_prefix": topics.prefix}
    await upgrade_schema(db_url)
    registry = Registry.from_settings(
        RegistrySettings(database_url=db_url, consumer_group=f"reg-{uuid.uuid4().hex}", **kafka)
    )
    admin_settings = AdminApiSettings(
        database_url=db_url, environment="development", jwt_secret=SECRET, **kafka
    )
    demo_settings = DemoSettings(gateway_tenant_id=TENANT, **kafka)
    token = issue_dev_token(
        admin_settings, sub="admin-1", tenant=TENANT, grants=["edit_user_sessions"]
    )
    auth = {"Authorization": f"Bearer {token}"}

    async with AsyncExitStack() as stack:
        await registry.start()
        stack.push_async_callback(registry.stop)
        admin = await stack.enter_async_context(
            served(create_admin_app(admin_settings), "http://admin")
        )
        demo = await stack.enter_async_context(
            served(create_demo_app(demo_settings), "http://demo")
        )
        publisher = await stack.enter_async_context(SessionEventPublisher(kafka_bootstrap, topics))

        browser_id, mobile_id = f"b-{uuid.uuid4().hex}", f"m-{uuid.uuid4().hex}"
        await publisher.publish(created(browser_id, SessionType.browser))
        await publisher.publish(created(mobile_id, SessionType.mobile))
        await publisher.publish(created(f"x-{uuid.uuid4().hex}", SessionType.browser, "other"))
        await registry.wait_until_idle(timeout=30)

        listed = (await admin.get("/api/v1/sessions", headers=auth)).json()
        assert {item["session_id"] for item in listed["items"]} == {browser_id, mobile_id}
        assert listed["total"] == 2

        # both sessions are admitted by the gateway before termination
        for sid in (browser_id, mobile_id):
            ok = await demo.get("/api/me", headers={"X-Session-Id": sid})
            assert ok.status_code == 200, ok.text

        accepted = await admin.post(
            "/api/v1/sessions/terminations",
            json={"session_ids": [browser_id, mobile_id]},
            headers=auth,
        )
        assert accepted.status_code == 202, accepted.text
        command_id = accepted.json()["command_id"]
        assert accepted.json()["requested"] == 2

        status = await eventually(
            lambda: admin.get(f"/api/v1/sessions/terminations/{command_id}", headers=auth),
            lambda r: r.json().get("status") == "applied",
        )
        assert (status.json()["status"], status.json()["terminated"]) == ("applied", 2)

        # the mobile app's next API call: 401, no grace period
        refused = await eventually(
            lambda: demo.get("/api/me", headers={"X-Session-Id": mobile_id}),
            lambda r: r.status_code == 401,
        )
        assert refused.json() == {"error": "session_revoked"}
        # the browser's next navigation: back to sign-in
        page = await eventually(
            lambda: demo.get(
                "/home", headers={"Cookie": f"sid={browser_id}", "Accept": "text/html"}
            ),
            lambda r: r.status_code == 303,
        )
        assert page.headers["location"].endswith("/signin")

        remaining = (await admin.get("/api/v1/sessions", headers=auth)).json()
        assert remaining["items"] == [] and remaining["total"] == 0

    events = await read_all(kafka_bootstrap, topics.events)
    terminated = [json.loads(v) for _, v in events if v and b"session.terminated" in v]
    assert sorted(e["session_id"] for e in terminated) == sorted([browser_id, mobile_id])
    assert all(e["command_id"] == command_id and e["reason"] == "admin" for e in terminated)
    revoked = {
        k: json.loads(v) for k, v in await read_all(kafka_bootstrap, topics.revocations) if v
    }
    assert set(revoked) == {browser_id.encode(), mobile_id.encode()}
    assert {r["session_type"] for r in revoked.values()} == {"browser", "mobile"}
