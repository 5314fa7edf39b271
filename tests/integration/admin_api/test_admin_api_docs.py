"""API documentation and the page's mode follow the environment; nothing loads from a CDN.

FastAPI's Swagger UI and ReDoc pages load their scripts from a CDN, without integrity, on the
origin whose sessionStorage holds the admin's token: the app serves neither, in any mode. The
OpenAPI document is served in development only (tools that need it in production read
`app.openapi()`). The admin page signs in from a `#token=` link only in development.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from admin_api_support import RecordingBus, make_settings, served_routes
from fastapi import FastAPI

from admin_api.app import create_app
from admin_api.web import AdminPageConfig
from admin_api.web.pages import STATIC_DIR

DB = "sqlite+aiosqlite:///:memory:"  # no request here reads the database
PRODUCTION: dict[str, Any] = {
    "environment": "production",
    "jwt_secret": "p" * 40,
    "jwt_issuer": "https://idp.example",
}
DOCS = ("/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc")
FOREIGN_URL = re.compile(r"""(?:https?:)?//[A-Za-z0-9.-]+\.[A-Za-z]{2,}[^\s"'`)<>]*""")
ALLOWED_URLS = {"http://www.w3.org/2000/svg"}  # an XML namespace name, never fetched


@asynccontextmanager
async def served(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as client:
        yield client


async def test_production_serves_no_api_documentation() -> None:
    app = create_app(make_settings(DB, **PRODUCTION), bus=RecordingBus())
    async with served(app) as client:
        for path in DOCS:
            assert (await client.get(path)).status_code == 404, path
    assert "/api/v1/sessions" in app.openapi()["paths"]  # still there for tools, in code


async def test_development_serves_the_document_and_no_documentation_pages() -> None:
    app = create_app(make_settings(DB), bus=RecordingBus())
    async with served(app) as client:
        document = await client.get("/openapi.json")
        assert document.status_code == 200
        assert "/api/v1/sessions" in document.json()["paths"]
        for path in DOCS[1:]:
            assert (await client.get(path)).status_code == 404, path


@pytest.mark.parametrize("settings", [{}, PRODUCTION], ids=["development", "production"])
async def test_nothing_the_app_serves_loads_anything_from_another_origin(
    settings: dict[str, Any],
) -> None:
    app = create_app(make_settings(DB, **settings), bus=RecordingBus())
    paths = [
        path
        for method, path in served_routes(app)
        if method == "GET" and "{" not in path and not path.startswith("/api/")
    ]
    assert "/admin" in paths, paths  # included routers are walked, not only the app's own routes
    assets = [f"/admin/static/{p.relative_to(STATIC_DIR)}" for p in STATIC_DIR.rglob("*")]
    checked = 0
    async with app.router.lifespan_context(app), served(app) as client:
        for path in paths + [a for a in assets if not a.endswith("/")]:
            response = await client.get(path)
            if response.status_code != 200 or "image" in response.headers["content-type"]:
                continue
            urls = set(FOREIGN_URL.findall(response.text)) - ALLOWED_URLS
            assert not urls, f"{path} refers to another origin: {sorted(urls)}"
            checked += 1
        policy = (await client.get("/admin")).headers["content-security-policy"]
    assert checked >= 15, checked
    assert "script-src 'self';" in policy and "default-src 'none'" in policy


async def test_the_page_signs_in_from_a_link_only_in_development() -> None:
    for settings, expected in (({}, True), (PRODUCTION, False)):
        app = create_app(make_settings(DB, **settings), bus=RecordingBus())
        async with served(app) as client:
            config = (await client.get("/admin/config.json")).json()
        assert config["fragment_sign_in"] is expected, settings
    with pytest.raises(ValueError, match=r"fragment_sign_in: .* only with SESSIONS_ENVIRONMENT"):
        create_app(
            make_settings(DB, **PRODUCTION),
            bus=RecordingBus(),
            admin_page=AdminPageConfig(fragment_sign_in=True),
        )
