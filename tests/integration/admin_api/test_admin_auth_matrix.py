"""Every endpoint answers 401/403/404 exactly as the contract says, and never leaks a tenant."""

from __future__ import annotations

import re
import time
import uuid
from collections.abc import Callable
from typing import Any

import httpx
import jwt
import pytest
from admin_api_support import (
    OTHER_TENANT,
    TENANT,
    RecordingBus,
    handle,
    insert,
    make_settings,
    served_routes,
    session_row,
)
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from admin_api.settings import AdminApiSettings

# Fixed, not uuid4(): the id is part of the test ids, which every xdist worker must collect alike.
COMMAND = "6f1d2c3b-8a4e-4b7f-9c1d-2e3f4a5b6c7d"
OURS, THEIRS = handle("ours"), handle("theirs", OTHER_TENANT)
ENDPOINTS: list[tuple[str, str, dict[str, Any] | None]] = [
    ("GET", "/api/v1/sessions", None),
    ("GET", f"/api/v1/sessions/{THEIRS}", None),
    ("GET", "/api/v1/sessions/export.csv", None),
    ("POST", "/api/v1/sessions/terminations", {"session_ids": [THEIRS]}),
    ("GET", f"/api/v1/sessions/terminations/{COMMAND}", None),
    ("GET", "/api/v1/audit/terminations", None),
    ("GET", "/api/v1/settings/sessions", None),
    (
        "PUT",
        "/api/v1/settings/sessions/browser",
        {"max_session_seconds": 3600, "idle_timeout_seconds": 600},
    ),
]
IDS = [f"{m} {p}" for m, p, _ in ENDPOINTS]


def bad_tokens(settings: AdminApiSettings) -> dict[str, str]:
    now = int(time.time())
    claims = {
        "sub": "a",
        "tenant": TENANT,
        "grants": [EDIT_USER_SESSIONS],
        "aud": "session-control",
    }
    (key,) = settings.hs256_keys
    return {
        "bad signature": jwt.encode({**claims, "exp": now + 600}, "x" * 40, algorithm="HS256"),
        "expired": jwt.encode({**claims, "exp": now - 120}, key, algorithm="HS256"),
        "not yet valid": jwt.encode(
            {**claims, "exp": now + 600, "nbf": now + 300}, key, algorithm="HS256"
        ),
        "wrong audience": issue_dev_token(
            make_settings(settings.database_url, jwt_audience="another-api"), "a", TENANT
        ),
        "no exp": jwt.encode(claims, key, algorithm="HS256"),
        # PyJWT's "none" algorithm takes no key, which its annotations do not allow
        "alg none": jwt.encode({**claims, "exp": now + 600}, None, algorithm="none"),  # type: ignore[arg-type]
        "bad tenant claim": jwt.encode(
            {**claims, "exp": now + 600, "tenant": "no spaces allowed"}, key, algorithm="HS256"
        ),
        "garbage": "not.a.jwt",
    }


async def call(
    client: httpx.AsyncClient, method: str, path: str, body: Any, headers: dict[str, str]
) -> httpx.Response:
    return await client.request(method, path, json=body, headers=headers)


async def nothing_was_done(
    client: httpx.AsyncClient, bus: RecordingBus, auth: dict[str, str]
) -> None:
    """A refused request published no command and no settings change, recorded no
    termination request in the audit, and left the settings at their defaults (read with a
    valid token): the status alone would not show work done before the refusal."""
    assert bus.commands == [] and bus.settings == []
    assert (await client.get("/api/v1/audit/terminations", headers=auth)).json()["items"] == []
    items = (await client.get("/api/v1/settings/sessions", headers=auth)).json()["items"]
    assert {i["session_type"] for i in items} == {"browser", "mobile"}
    assert all(i["is_default"] for i in items)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=IDS)
async def test_no_or_bad_token_is_401_with_a_bearer_challenge(
    client: httpx.AsyncClient,
    settings: AdminApiSettings,
    bus: RecordingBus,
    auth: dict[str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    cases = {"missing": {}, "basic scheme": {"Authorization": "Basic YTpi"}} | {
        name: {"Authorization": f"Bearer {token}"} for name, token in bad_tokens(settings).items()
    }
    for name, headers in cases.items():
        response = await call(client, method, path, body, headers)
        assert response.status_code == 401, (name, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer", name
        await nothing_was_done(client, bus, auth)


@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=IDS)
async def test_without_the_grant_is_403(
    client: httpx.AsyncClient,
    token: Callable[..., str],
    bus: RecordingBus,
    auth: dict[str, str],
    method: str,
    path: str,
    body: Any,
) -> None:
    headers = {"Authorization": f"Bearer {token(grants=('view_users',))}"}
    response = await call(client, method, path, body, headers)
    assert response.status_code == 403, response.text
    assert EDIT_USER_SESSIONS in response.json()["detail"]
    await nothing_was_done(client, bus, auth)


async def test_other_tenants_session_and_command_are_404_and_never_listed(
    engine: AsyncEngine,
    client: httpx.AsyncClient,
    auth: dict[str, str],
    token: Callable[..., str],
) -> None:
    await insert(engine, [session_row(tenant_id=OTHER_TENANT, session_id=THEIRS)])
    await insert(engine, [session_row(session_id=OURS)])
    theirs = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT, sub='other-admin')}"}

    assert (await client.get(f"/api/v1/sessions/{THEIRS}", headers=auth)).status_code == 404
    assert (await client.get(f"/api/v1/sessions/{THEIRS}", headers=theirs)).status_code == 200
    listed = (await client.get("/api/v1/sessions", headers=auth)).json()
    assert [i["session_id"] for i in listed["items"]] == [OURS]
    assert listed["total"] == 1
    export = (await client.get("/api/v1/sessions/export.csv", headers=auth)).text
    assert OURS in export and THEIRS not in export

    accepted = await client.post(
        "/api/v1/sessions/terminations", json={"session_ids": [OURS]}, headers=theirs
    )
    assert accepted.status_code == 202
    command_id = accepted.json()["command_id"]
    mine = await client.get(f"/api/v1/sessions/terminations/{command_id}", headers=theirs)
    assert mine.status_code == 200
    for path in (f"/api/v1/sessions/terminations/{command_id}", "/api/v1/audit/terminations"):
        response = await client.get(path, headers=auth)
        assert response.status_code in (200, 404)
        assert command_id not in response.text
    unknown = await client.get(f"/api/v1/sessions/terminations/{uuid.uuid4()}", headers=auth)
    assert unknown.status_code == 404

    their_mobile = {"max_session_seconds": 7200, "idle_timeout_seconds": 3600}
    changed = await client.put(
        "/api/v1/settings/sessions/mobile", json=their_mobile, headers=theirs
    )
    assert changed.status_code == 200, changed.text
    seen = (await client.get("/api/v1/settings/sessions", headers=theirs)).json()["items"]
    mobile = next(item for item in seen if item["session_type"] == "mobile")
    assert {k: mobile[k] for k in (*their_mobile, "is_default")} == {
        **their_mobile,
        "is_default": False,
    }
    # their change is theirs alone: ours are still the defaults, both types listed
    ours = (await client.get("/api/v1/settings/sessions", headers=auth)).json()["items"]
    assert {item["session_type"] for item in ours} == {"browser", "mobile"}
    assert all(item["is_default"] for item in ours)


async def test_a_token_of_the_other_tenant_ends_only_its_own_sessions(
    client: httpx.AsyncClient, token: Callable[..., str], bus: Any
) -> None:
    theirs = {"Authorization": f"Bearer {token(tenant=OTHER_TENANT, sub='other-admin')}"}
    response = await client.post(
        "/api/v1/sessions/terminations", json={"session_ids": [OURS]}, headers=theirs
    )
    assert response.status_code == 202
    (command,) = bus.commands
    assert command.tenant_id == OTHER_TENANT
    assert command.requested_by == "other-admin"


PUBLIC = {
    ("GET", "/healthz"),
    ("GET", "/readyz"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/admin"),
    ("GET", "/admin/"),
    ("GET", "/admin/config.json"),
    ("GET", "/admin/vocabulary.json"),  # the list's column, sort, type and filter names
    ("GET", "/admin/token"),  # the proxy's header echoed to the page; 404 unless configured
    ("*", "/admin/static/{path}"),
}
"""Routes that answer without a token: probes, metrics, the API's OpenAPI document (served in
development only, as the `client` here is) and the admin page's static shell and vocabulary (the
page itself calls the API with the admin's token)."""


def app_routes(client: httpx.AsyncClient) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, read from the app itself."""
    return served_routes(client._transport.app)  # type: ignore[attr-defined]


def _template(path: str) -> re.Pattern[str]:
    return re.compile("^" + re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(path)) + "$")


async def test_the_matrix_covers_every_route_of_the_app_and_of_its_openapi_document(
    client: httpx.AsyncClient,
) -> None:
    routes = app_routes(client)
    assert len(routes) > len(PUBLIC)
    uncovered = [
        f"{method} {path}"
        for method, path in routes
        if (method, path) not in PUBLIC
        and not any(m == method and _template(path).match(p) for m, p, _ in ENDPOINTS)
    ]
    assert not uncovered, f"add these routes to ENDPOINTS (and give them auth): {uncovered}"
    spec = (await client.get("/openapi.json")).json()
    documented = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert documented <= set(routes), documented - set(routes)
    assert {r for r in routes if r[1].startswith("/api/")} <= documented


async def test_every_route_but_the_public_ones_refuses_a_request_without_a_token(
    client: httpx.AsyncClient,
) -> None:
    checked = 0
    for method, path in app_routes(client):
        if (method, path) in PUBLIC:
            continue
        concrete = re.sub(r"\{[^}]+\}", str(uuid.uuid4()), path)
        response = await client.request(method, concrete)
        assert response.status_code == 401, (method, path, response.status_code)
        checked += 1
    assert checked >= len(ENDPOINTS)
