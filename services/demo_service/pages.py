"""The demo's HTML pages: sign-in form, home, reports; what a browser user sees."""

from __future__ import annotations

import html
import re
import secrets
from urllib.parse import parse_qs

from aiokafka.errors import KafkaError
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from pydantic import TypeAdapter, ValidationError

from demo_service.api import UserName
from demo_service.context import Context, CurrentSession, client_ip
from demo_service.policy import PolicyUnavailable
from demo_service.sessions import ExternalSession, SignInUnrecorded, Visitor
from demo_service.settings import DemoSettings
from session_contracts.models import SessionType

router = APIRouter(include_in_schema=False)

_USER_NAME: TypeAdapter[str] = TypeAdapter(UserName)


def _page(title: str, body: str, status_code: int = 200) -> HTMLResponse:
    return HTMLResponse(
        f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)} - Demo service</title>
<style>body{{font-family:system-ui,sans-serif;margin:2rem auto;max-width:40rem}}
nav a{{margin-right:1rem}} .error{{color:#b00020}}</style></head>
<body>{body}</body></html>""",
        status_code=status_code,
        headers={"cache-control": "no-store"},
    )


def _who(session: Visitor) -> str:
    if isinstance(session, ExternalSession):
        return (
            "Signed in with a session opened elsewhere on the platform "
            f"(<code>{html.escape(session.handle[:8])}…</code>)"
        )
    return (
        f"Signed in as <strong>{html.escape(session.user_name)}</strong> "
        f"({session.session_type.value} session, "
        f"expires {session.expires_at():%Y-%m-%d %H:%M} UTC)"
    )


def _signed_in_page(title: str, session: Visitor, content: str) -> HTMLResponse:
    return _page(
        title,
        f"""<nav><a href="/home">Home</a><a href="/reports">Reports</a>
<form method="post" action="/signout" style="display:inline">
<button type="submit">Sign out</button></form></nav>
<h1>{html.escape(title)}</h1>
<p id="who">{_who(session)}</p>
{content}""",
    )


ENDED_MESSAGES = {
    "admin": "An administrator ended your session. Sign in again to continue.",
    "security": "Your session was ended for security reasons. Sign in again to continue.",
    "expired": "Your session expired. Sign in again to continue.",
    "signed_out": "You were signed out in another window. Sign in again to continue.",
}
"""What the sign-in page says for the gateway's `?ended=` (why a revoked session was sent here)."""


def _sign_in_form(error: str = "", status_code: int = 200, ended: str = "") -> HTMLResponse:
    message = f'<p class="error" role="alert">{html.escape(error)}</p>' if error else ""
    if not error and ended in ENDED_MESSAGES:
        message = f'<p class="notice" role="status">{html.escape(ENDED_MESSAGES[ended])}</p>'

    return _page(
        "Sign in",
        f"""<h1>Sign in</h1>{message}
<form method="post" action="/signin">
<label>User name <input name="user_name" id="user_name" required maxlength="256"></label>
<input type="hidden" name="session_type" value="browser">
<button type="submit" id="sign_in">Sign in</button>
</form>""",
        status_code,
    )


FORM_COOKIE = "sid_form"
"""Set by the sign-in page, `SameSite=Strict`: a browser sends it with a form posted from this
site's own pages only. Served over HTTPS (`SESSIONS_DEMO_COOKIE_SECURE`) it is
`SECURE_FORM_COOKIE`, which no other host of the site can plant (`form_cookie`)."""
SECURE_FORM_COOKIE = "__Host-sid_form"
FORM_VALUE = re.compile(r"[A-Za-z0-9_-]{22}")
"""The shape of the value the page sets (`secrets.token_urlsafe(16)`). Only such a value pairs a
browser's sign-ins (`SignIn.sign_in`'s `browser`): the client chooses the cookie, and a map
keyed by 60 KB values chosen per sign-in held gigabytes (a review, stop 72)."""


def form_cookie(settings: DemoSettings) -> str:
    """The sign-in page's cookie name: `__Host-` over HTTPS (a review, stop 72: a sibling
    subdomain could plant `sid_form` for the parent domain, and so choose a visitor's value)."""
    return SECURE_FORM_COOKIE if settings.demo_cookie_secure else FORM_COOKIE


def _browser(request: Request, settings: DemoSettings) -> str | None:
    """The sign-in page's cookie value, when it is one the page could have set."""
    value = request.cookies.get(form_cookie(settings))
    return value if value is not None and FORM_VALUE.fullmatch(value) else None


def _cross_site(request: Request, settings: DemoSettings) -> bool:
    """Whether the form may have been posted from another site's page, which could otherwise
    sign a visitor in under a name of its choosing (login CSRF). A browser says where a request
    comes from in `Sec-Fetch-Site`, which no page can set: `same-origin` and `none` (typed, a
    bookmark) are taken; `cross-site` and `same-site` (another subdomain) are refused. Browsers
    send it to HTTPS and localhost only: over plain HTTP the form must carry the sign-in page's
    `SameSite=Strict` cookie, which no other site's form carries. `Origin` is not compared with
    `Host`: a proxy that rewrites `Host`, or a page sent with `Referrer-Policy: no-referrer`
    (`Origin: null`), refused real sign-ins (reviews, stop 71)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site.lower() not in ("same-origin", "none")
    return form_cookie(settings) not in request.cookies


def _with_form_cookie(response: Response, settings: DemoSettings) -> Response:
    response.set_cookie(
        form_cookie(settings),
        secrets.token_urlsafe(16),
        max_age=24 * 3600,
        # a `__Host-` cookie must have the path /; otherwise only the sign-in page needs it
        path="/" if settings.demo_cookie_secure else "/signin",
        httponly=True,
        samesite="strict",
        secure=settings.demo_cookie_secure,
    )
    return response


@router.get("/signin")
async def sign_in_page(context: Context, ended: str = "") -> Response:
    """The sign-in form; `ended` (set by the gateway's redirect) says why the session ended."""
    return _with_form_cookie(_sign_in_form(ended=ended), context.settings)


@router.post("/signin")
async def sign_in(request: Request, context: Context) -> Response:
    """Create a browser session, set its cookie and go home; the session the browser held
    before, if this instance issued it, is signed out once the new one is open (not left for
    its idle timeout)."""
    if _cross_site(request, context.settings):
        refused = _sign_in_form("Sign in from this site's own sign-in page.", 403)
        return _with_form_cookie(refused, context.settings)  # so that it can, from this one
    body = await request.body()  # RequestLimits bounds it
    try:
        fields = parse_qs(body.decode(), max_num_fields=10, strict_parsing=False)
    except (UnicodeDecodeError, ValueError):
        return _sign_in_form("The form could not be read.", 422)
    try:
        user_name = _USER_NAME.validate_python((fields.get("user_name") or [""])[0])
    except ValidationError:
        return _sign_in_form(
            "user_name: enter a name of 1 to 256 characters, without control characters.", 422
        )
    settings = context.settings
    try:
        session = await context.sign_in.sign_in(
            user_name,
            SessionType.browser,
            client_ip(request),
            request.headers.get("user-agent"),
            replacing=request.cookies.get(settings.gateway_cookie_name),
            browser=_browser(request, settings),
        )
    except (PolicyUnavailable, SignInUnrecorded, KafkaError):
        form = _sign_in_form("Sign-in is unavailable for a moment: try again shortly.", 503)
        form.headers["retry-after"] = "5"
        return form
    response = RedirectResponse("/home", status_code=303)
    if not context.sign_in.holds(session.credential):
        # a later sign-in of this browser is open, and its answer set the cookie the browser
        # keeps: this one, ended, must not replace it (a review, stop 72: two tabs whose
        # earlier sign-in finished last left the visitor signed out, the later one unheld)
        return response
    response.set_cookie(
        settings.gateway_cookie_name,
        session.credential,
        max_age=session.policy.max_session_seconds,
        httponly=True,
        samesite="lax",
        secure=settings.demo_cookie_secure,
    )
    return response


@router.post("/signout")
async def sign_out(request: Request, context: Context) -> Response:
    """End the session (session.terminated, reason logout) and go to sign-in."""
    credential = getattr(request.state, "session_credential", None)
    if credential is not None:
        await context.sign_in.sign_out(credential)
    response = RedirectResponse("/signin", status_code=303)
    settings = context.settings
    # as it was set: a browser keeps a `__Host-` cookie that a deletion without Secure names
    response.delete_cookie(
        settings.gateway_cookie_name,
        secure=settings.demo_cookie_secure,
        httponly=True,
        samesite="lax",
    )
    return response


@router.get("/")
async def root() -> RedirectResponse:
    """Home."""
    return RedirectResponse("/home", status_code=303)


@router.get("/home", response_model=None)
async def home(session: CurrentSession) -> Response:
    """The landing page after sign-in."""
    if session is None:
        return RedirectResponse("/signin", status_code=303)
    return _signed_in_page("Home", session, "<p>Welcome to the demo platform service.</p>")


@router.get("/reports", response_model=None)
async def reports(session: CurrentSession) -> Response:
    """A second page to browse to."""
    if session is None:
        return RedirectResponse("/signin", status_code=303)
    rows = "".join(f"<tr><td>Report {n}</td><td>{n * 17 % 100} %</td></tr>" for n in range(1, 6))
    return _signed_in_page(
        "Reports", session, f"<table><tr><th>Report</th><th>Score</th></tr>{rows}</table>"
    )
