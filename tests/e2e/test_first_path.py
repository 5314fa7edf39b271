"""One session travels the whole path on a real broker, for SQLite and for PostgreSQL.

A user signs in to the demo service (a platform service), which publishes `session.created`
naming the session by its handle; the registry projects it; the admin API lists the handle and
accepts a termination by it; the registry applies the command, writes `session.terminated`
and a revocation keyed `<tenant>/<handle>`; the auth gateway in front of the demo then refuses
the credential. No credential is on any topic or in the admin API's answers.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from admin_api.app import create_app as create_admin_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from demo_service.app import create_app as create_demo_app
from demo_service.settings import DemoSettings
from fresh_topics import connection, read_records
from read_model.database import upgrade_schema
from session_contracts.handles import record_key, session_handle
from session_contracts.models import SessionPolicy, SessionType
from session_contracts.publisher import SessionEventPublisher, created_event
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


async def test_a_terminated_session_is_refused_at_the_next_request(
    kafka_bootstrap: str, topics: Topics, db_url: str
) -> None:
    kafka: dict[str, Any] = {
        "kafka_bootstrap_servers": kafka_bootstrap,
        "topic_prefix": topics.prefix,
    }
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
        publisher = await stack.enter_async_context(
            SessionEventPublisher(connection(kafka_bootstrap, topics))
        )

        # a browser and a phone sign in to the demo; it issues the credentials
        form = {"content-type": "application/x-www-form-urlencoded"}
        assert (await demo.get("/signin")).status_code == 200  # the page whose form is posted
        signed_in = await demo.post("/signin", content="user_name=Ada Lovelace", headers=form)
        assert signed_in.status_code == 303, signed_in.text
        browser_id = signed_in.cookies["sid"]
        phone = (await demo.post("/api/signin", json={"user_name": "Ada Lovelace"})).json()
        mobile_id = phone["credential"]
        demo.cookies.clear()
        handles = {session_handle(TENANT, browser_id), session_handle(TENANT, mobile_id)}
        assert phone["handle"] == session_handle(TENANT, mobile_id)
        # another platform service, another tenant, the same credential string
        await publisher.publish(
            created_event(
                tenant_id="other",
                credential=browser_id,
                user_id="u-x",
                user_name="Someone Else",
                session_type=SessionType.browser,
                ip_address="203.0.113.7",
                policy=SessionPolicy(max_session_seconds=3600, idle_timeout_seconds=900),
            )
        )
        await registry.wait_until_idle(timeout=30)

        listed = (await admin.get("/api/v1/sessions", headers=auth)).json()
        assert {item["session_id"] for item in listed["items"]} == handles
        assert listed["total"] == 2

        # both sessions are admitted by the gateway before termination
        for sid in (browser_id, mobile_id):
            ok = await demo.get("/api/me", headers={"X-Session-Id": sid})
            assert ok.status_code == 200, ok.text
            assert ok.json()["signed_in_here"] is True

        accepted = await admin.post(
            "/api/v1/sessions/terminations",
            json={"session_ids": sorted(handles)},
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
        assert page.headers["location"].endswith("/signin?ended=admin")  # and why

        remaining = (await admin.get("/api/v1/sessions", headers=auth)).json()
        assert remaining["items"] == [] and remaining["total"] == 0

    # every record of every topic, up to its end offsets (a single poll may stop short)
    logged = {spec.name: await read_records(kafka_bootstrap, spec.name) for spec in topics.specs()}
    events = [r.value for r in logged[topics.events]]
    terminated = [json.loads(v) for v in events if v and b"session.terminated" in v]
    assert sorted(e["session_id"] for e in terminated) == sorted(handles)
    assert all(e["command_id"] == command_id and e["reason"] == "admin" for e in terminated)
    revoked = {r.key: json.loads(r.value) for r in logged[topics.revocations] if r.value}
    assert set(revoked) == {record_key(TENANT, h) for h in handles}
    assert {r["session_type"] for r in revoked.values()} == {"browser", "mobile"}
    (command,) = [json.loads(r.value) for r in logged[topics.commands]]
    assert command["command_id"] == command_id  # the command by handles, as it went out
    # no credential on any topic: not in a key, a value or a header
    credentials = (browser_id.encode(), mobile_id.encode())
    for topic, records in logged.items():
        for r in records:
            parts = [r.key or b"", r.value or b"", *(v or b"" for _, v in r.headers or ())]
            assert not [p for p in parts for c in credentials if c in p], (topic, r.offset)
