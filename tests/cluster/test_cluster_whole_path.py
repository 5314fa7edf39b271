"""The whole path on the secured cluster: every service as its own principal over SASL_SSL.

The demo service (a platform service, running the gateway as principal `gateway`) publishes a
sign-in; the registry (`registry`) projects it; the admin API (`admin-api`) lists it and
accepts its termination; the registry writes the revocation; the gateway refuses the
credential. Only the ACLs of docs/security.md allow any of it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from admin_api.app import create_app as create_admin_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from cluster_support import Cluster
from demo_service.app import create_app as create_demo_app
from demo_service.settings import DemoSettings
from read_model.database import upgrade_schema
from session_contracts.handles import session_handle
from session_contracts.models import SessionPolicy, SessionType
from session_registry.bootstrap import Registry
from session_registry.settings import RegistrySettings

pytestmark = [pytest.mark.cluster, pytest.mark.xdist_group("cluster")]

SECRET = "cluster-e2e-" + "s" * 40


@asynccontextmanager
async def served(app: FastAPI, base_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base_url) as client,
    ):
        yield client


async def eventually(
    probe: Callable[[], Awaitable[httpx.Response]],
    done: Callable[[httpx.Response], bool],
    within: float = 60,
) -> httpx.Response:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        response = await probe()
        if done(response) or asyncio.get_running_loop().time() > deadline:
            return response
        await asyncio.sleep(0.1)


async def test_sign_in_list_terminate_refuse_on_sasl_ssl_with_acls(
    own_environment: Cluster, tenant: str, tmp_path: Path
) -> None:
    # A log of its own (topics and ACLs of a fresh prefix): the registry below starts with no
    # stored positions, so on the shared `cluster.` topics it would first replay every earlier
    # run's records, a catch-up that grows with each run until the list misses its deadline.
    cluster = own_environment
    db_url = f"sqlite+aiosqlite:///{tmp_path / 'sessions.db'}"
    await upgrade_schema(db_url)
    # The registry's group is the environment's (`cluster.session-registry`, the one its ACL
    # names); its positions are kept in this test's own database.
    registry = Registry.from_settings(
        RegistrySettings(
            **cluster.as_user("registry"),
            database_url=db_url,
            create_topics=False,
            sweep_interval_seconds=0,
        )
    )
    assert registry.settings.consumer_group == f"{cluster.prefix}session-registry"
    admin_settings = AdminApiSettings(
        **cluster.as_user("admin-api"),
        database_url=db_url,
        environment="development",
        jwt_secret=SECRET,
    )
    demo_settings = DemoSettings(**cluster.as_user("gateway"), gateway_tenant_id=tenant)
    token = issue_dev_token(
        admin_settings, sub="admin-1", tenant=tenant, grants=["edit_user_sessions"]
    )
    auth = {"Authorization": f"Bearer {token}"}

    async with AsyncExitStack() as stack:
        await registry.start()
        stack.push_async_callback(registry.stop)
        admin = await stack.enter_async_context(
            served(create_admin_app(admin_settings), "http://admin")
        )
        demo_app = create_demo_app(demo_settings)
        demo = await stack.enter_async_context(served(demo_app, "http://demo"))
        ready = await eventually(lambda: admin.get("/readyz"), lambda r: r.status_code == 200)
        assert ready.status_code == 200, ready.text

        # the admin's settings reach the login service (the gateway principal reads them)
        week = {"max_session_seconds": 7 * 86400 + 1, "idle_timeout_seconds": 3601}
        changed = await admin.put("/api/v1/settings/sessions/mobile", json=week, headers=auth)
        assert changed.status_code == 200, changed.text
        policies = demo_app.state.demo.policies
        taken = SessionPolicy(**week)
        deadline = asyncio.get_running_loop().time() + 60
        while await policies.current(tenant, SessionType.mobile) != taken:
            assert asyncio.get_running_loop().time() < deadline, "settings never reached sign-in"
            await asyncio.sleep(0.1)

        phone = (await demo.post("/api/signin", json={"user_name": "Ada Lovelace"})).json()
        credential = phone["credential"]
        handle = session_handle(tenant, credential)

        listed = await eventually(
            lambda: admin.get("/api/v1/sessions", headers=auth),
            lambda r: r.json().get("total") == 1,
        )
        assert [item["session_id"] for item in listed.json()["items"]] == [handle]
        # the session took the settings in force: not outdated by them
        assert listed.json()["items"][0]["policy_outdated"] is False
        ok = await eventually(
            lambda: demo.get("/api/me", headers={"X-Session-Id": credential}),
            lambda r: r.status_code == 200,
        )
        assert ok.status_code == 200, ok.text

        accepted = await admin.post(
            "/api/v1/sessions/terminations", json={"session_ids": [handle]}, headers=auth
        )
        assert accepted.status_code == 202, accepted.text
        command_id = accepted.json()["command_id"]
        status = await eventually(
            lambda: admin.get(f"/api/v1/sessions/terminations/{command_id}", headers=auth),
            lambda r: r.json().get("status") == "applied",
        )
        assert (status.json()["status"], status.json()["terminated"]) == ("applied", 1)
        # the outbox (session.terminated to the events topic, the revocation) fully relayed
        await registry.wait_until_idle(timeout=60)

        refused = await eventually(
            lambda: demo.get("/api/me", headers={"X-Session-Id": credential}),
            lambda r: r.status_code == 401,
        )
        assert refused.json() == {"error": "session_revoked"}
        remaining = (await admin.get("/api/v1/sessions", headers=auth)).json()
        assert remaining["total"] == 0
