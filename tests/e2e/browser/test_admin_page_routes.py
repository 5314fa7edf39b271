"""The page's routes over ASGI (no browser): shell, headers, config hook, static files."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from admin_api.app import app_from_env
from admin_api.web import AdminPageConfig, router
from admin_api.web.pages import STATIC_DIR


def make_app(config: AdminPageConfig | None = None) -> FastAPI:
    app = FastAPI()
    app.include_router(router)
    if config is not None:
        app.state.admin_page_config = config
    return app


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        yield c


async def test_the_shell_loads_its_own_scripts_under_a_strict_policy(
    client: httpx.AsyncClient,
) -> None:
    page = await client.get("/admin")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<base href="/admin/">' in page.text
    assert '<script type="module" src="static/js/main.js">' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy
    assert "connect-src 'self';" in policy
    assert "unsafe" not in policy
    assert page.headers["referrer-policy"] == "no-referrer"
    assert page.headers["cache-control"] == "no-store"


async def test_the_shell_follows_a_root_path() -> None:
    transport = httpx.ASGITransport(app=make_app(), root_path="/sessions")
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        page = await c.get("/admin")
    assert '<base href="/sessions/admin/">' in page.text


async def test_trailing_slash_redirects_to_the_page(client: httpx.AsyncClient) -> None:
    response = await client.get("/admin/")
    assert response.status_code == 308
    assert response.headers["location"] == "/admin"


async def test_static_files_are_served_and_traversal_is_not(client: httpx.AsyncClient) -> None:
    script = await client.get("/admin/static/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert "takeTokenFromFragment" in script.text
    style = await client.get("/admin/static/css/admin.css")
    assert style.headers["content-type"].startswith("text/css")
    assert (await client.get("/admin/static/%2e%2e/pages.py")).status_code == 404
    assert (await client.get("/admin/static/js/nope.js")).status_code == 404


async def test_no_module_writes_api_data_as_markup(client: httpx.AsyncClient) -> None:
    modules = sorted(path.name for path in (STATIC_DIR / "js").glob("*.js"))
    assert "main.js" in modules and len(modules) >= 10
    for name in modules:
        response = await client.get(f"/admin/static/js/{name}")
        assert response.status_code == 200, name
        for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
            assert sink not in response.text, f"{name} uses {sink}"


async def test_config_defaults_have_no_fragment_sign_in(client: httpx.AsyncClient) -> None:
    config = (await client.get("/admin/config.json")).json()
    assert config == {
        "token_url": None,
        "sign_in_url": None,
        "live_interval_seconds": 5.0,
        "page_size": 50,
        "fragment_sign_in": False,
    }


async def test_a_deployment_names_its_token_endpoint_and_sign_in() -> None:
    config = AdminPageConfig(
        token_url="https://sso.example.com/oauth2/token",
        sign_in_url="https://sso.example.com/oauth2/start",
        live_interval_seconds=10,
    )
    transport = httpx.ASGITransport(app=make_app(config))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        served = (await c.get("/admin/config.json")).json()
        policy = (await c.get("/admin")).headers["content-security-policy"]
    assert served["token_url"] == "https://sso.example.com/oauth2/token"
    assert served["sign_in_url"] == "https://sso.example.com/oauth2/start"
    assert served["live_interval_seconds"] == 10
    assert "connect-src 'self' https://sso.example.com;" in policy


async def test_the_environment_configures_the_page_of_app_from_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SESSIONS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("SESSIONS_ENVIRONMENT", "development")
    monkeypatch.setenv("SESSIONS_ADMIN_PAGE_TOKEN_URL", "/oauth2/token")
    monkeypatch.setenv("SESSIONS_ADMIN_PAGE_SIGN_IN_URL", "/oauth2/sign_in")
    monkeypatch.setenv("SESSIONS_ADMIN_PAGE_LIVE_INTERVAL_SECONDS", "15")
    transport = httpx.ASGITransport(app=app_from_env())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        served = (await c.get("/admin/config.json")).json()
    assert served == {
        "token_url": "/oauth2/token",
        "sign_in_url": "/oauth2/sign_in",
        "live_interval_seconds": 15.0,
        "page_size": 50,
        "fragment_sign_in": True,
    }


PROXY = AdminPageConfig(token_url="token", token_header="X-Forwarded-Access-Token")


async def test_the_token_hook_hands_the_proxys_header_to_the_page() -> None:
    transport = httpx.ASGITransport(app=make_app(PROXY))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        handed = await c.get("/admin/token", headers={"X-Forwarded-Access-Token": "eyJ.a.b"})
        bearer = await c.get("/admin/token", headers={"X-Forwarded-Access-Token": "Bearer eyJ.c"})
        config = (await c.get("/admin/config.json")).json()
    assert handed.status_code == 200 and handed.json() == {"access_token": "eyJ.a.b"}
    assert handed.headers["cache-control"] == "no-store"
    assert handed.headers["cross-origin-resource-policy"] == "same-origin"
    assert handed.headers["x-content-type-options"] == "nosniff"
    assert "access-control-allow-origin" not in handed.headers
    assert bearer.json() == {"access_token": "eyJ.c"}
    assert config["token_url"] == "token" and "token_header" not in config


async def test_the_token_hook_refuses_other_sites_and_requests_without_the_proxy() -> None:
    transport = httpx.ASGITransport(app=make_app(PROXY))
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        token = {"X-Forwarded-Access-Token": "eyJ.a.b"}
        for site in ("cross-site", "same-site", "none"):
            refused = await c.get("/admin/token", headers={**token, "Sec-Fetch-Site": site})
            assert refused.status_code == 403, site
            assert "own origin only" in refused.json()["detail"]
            assert "eyJ" not in refused.text
        same = await c.get("/admin/token", headers={**token, "Sec-Fetch-Site": "same-origin"})
        assert same.json() == {"access_token": "eyJ.a.b"}
        missing = await c.get("/admin/token")
        assert missing.status_code == 401
        assert "no X-Forwarded-Access-Token header" in missing.json()["detail"]
    transport = httpx.ASGITransport(app=make_app())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        unconfigured = await c.get("/admin/token", headers=token)
    assert unconfigured.status_code == 404 and "eyJ" not in unconfigured.text


async def test_the_environment_names_the_proxys_token_header(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SESSIONS_DATABASE_URL", f"sqlite+aiosqlite:///{tmp_path / 'x.db'}")
    monkeypatch.setenv("SESSIONS_ENVIRONMENT", "development")
    monkeypatch.setenv("SESSIONS_ADMIN_PAGE_TOKEN_HEADER", "X-Auth Token")
    with pytest.raises(ValueError, match="admin_page_token_header"):
        app_from_env()
    monkeypatch.setenv("SESSIONS_ADMIN_PAGE_TOKEN_HEADER", "X-Access-Token")
    transport = httpx.ASGITransport(app=app_from_env())
    async with httpx.AsyncClient(transport=transport, base_url="http://admin") as c:
        config = (await c.get("/admin/config.json")).json()
        handed = await c.get("/admin/token", headers={"X-Access-Token": "eyJ.x.y"})
    assert config["token_url"] == "token"
    assert handed.json() == {"access_token": "eyJ.x.y"}
