"""Routes of the Session Management page: the HTML shell, its config, its vocabulary and its
static files."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from fastapi import APIRouter, Depends, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles

from admin_api.web.config import APP_STATE_KEY, AdminPageConfig
from admin_api.web.vocabulary import page_vocabulary

STATIC_DIR = Path(__file__).resolve().parent / "static"
BASE_PLACEHOLDER = "__ADMIN_BASE__"

router = APIRouter(include_in_schema=False)
router.mount("/admin/static", StaticFiles(directory=STATIC_DIR), name="admin-static")


async def page_config(request: Request) -> AdminPageConfig:
    """The deployment's page config from app state, or the defaults (no #token= sign-in)."""
    config = getattr(request.app.state, APP_STATE_KEY, None)
    return config if isinstance(config, AdminPageConfig) else AdminPageConfig()


PageConfig = Annotated[AdminPageConfig, Depends(page_config)]


@cache
def _shell() -> str:
    return (STATIC_DIR / "index.html").read_text(encoding="utf-8")


def _content_security_policy(config: AdminPageConfig) -> str:
    # Scripts and styles only from our own files: injected markup could never run.
    connect = ["'self'"]
    if config.token_url:
        parts = urlsplit(config.token_url)
        if parts.scheme and parts.netloc:
            connect.append(f"{parts.scheme}://{parts.netloc}")
    return "; ".join(
        [
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            f"connect-src {' '.join(connect)}",
            "base-uri 'self'",
            "form-action 'self'",
            "frame-ancestors 'none'",
        ]
    )


@router.get("/admin", response_class=HTMLResponse)
async def admin_page(request: Request, config: PageConfig) -> HTMLResponse:
    """The Session Management page."""
    base = f"{request.scope.get('root_path', '')}/admin/"
    return HTMLResponse(
        _shell().replace(BASE_PLACEHOLDER, base),
        headers={
            "Content-Security-Policy": _content_security_policy(config),
            "Referrer-Policy": "no-referrer",
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-store",
        },
    )


@router.get("/admin/")
async def admin_page_slash(request: Request) -> RedirectResponse:
    """One address for the page, so relative asset URLs resolve the same way."""
    return RedirectResponse(f"{request.scope.get('root_path', '')}/admin", status_code=308)


@router.get("/admin/config.json")
async def admin_page_config(config: PageConfig) -> JSONResponse:
    """How the page finds its token and how often live mode polls."""
    return JSONResponse(config.model_dump(), headers={"Cache-Control": "no-store"})


@router.get("/admin/vocabulary.json")
async def admin_page_vocabulary() -> JSONResponse:
    """The list's columns, sort keys, session types and filters, as the Python code defines them.

    Public like the page's scripts: the same for every deployment and tenant, names only.
    """
    return JSONResponse(
        page_vocabulary(),
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


@router.get("/admin/token")
async def admin_page_token(request: Request, config: PageConfig) -> JSONResponse:
    """The signed-in admin's token, as the identity-aware proxy in front passed it.

    Only the page's own origin may read it: no CORS headers, `Cross-Origin-Resource-Policy:
    same-origin`, and a browser's cross-site request (`Sec-Fetch-Site`) is refused. Whoever
    reaches this without the proxy gets back only a header they sent themselves.
    """
    headers = {
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
        "Cross-Origin-Resource-Policy": "same-origin",
    }
    if config.token_header is None:
        return JSONResponse({"detail": "Not Found"}, status_code=404, headers=headers)
    site = request.headers.get("sec-fetch-site")
    if site is not None and site != "same-origin":
        detail = f"the token is handed to the page's own origin only (Sec-Fetch-Site: {site})"
        return JSONResponse({"detail": detail}, status_code=403, headers=headers)
    token = request.headers.get(config.token_header, "").strip()
    if token[:7].lower() == "bearer ":
        token = token[7:].strip()
    if not token:
        detail = f"no {config.token_header} header: is the identity-aware proxy in front of /admin?"
        return JSONResponse({"detail": detail}, status_code=401, headers=headers)
    return JSONResponse({"access_token": token}, headers=headers)
