"""Signing in, refused tokens, loading/empty/error states, keyboard and screen-reader use."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
from admin_stack import Stack
from playwright.async_api import Locator, Page, Route, expect

from admin_api.web import AdminPageConfig

pytestmark = [pytest.mark.browser, pytest.mark.kafka]


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


async def test_the_token_leaves_the_url_and_never_reaches_the_server(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Token Person")])
    sent: list[str] = []
    page.on("request", lambda request: sent.append(request.url))

    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(1)

    assert page.url == f"{stack.base_url}/admin"
    assert await page.evaluate("location.hash") == ""
    assert await page.evaluate("sessionStorage.getItem('sessionControl.token')") == tenant.token
    assert not any(tenant.token in url for url in sent), sent
    assert any(line for line in stack.logs.lines if "/admin" in line), "access log is captured"
    assert not any(tenant.token in line for line in stack.logs.lines)

    # a reload in the same tab stays signed in without the fragment
    await page.reload()
    await expect(rows(page)).to_have_count(1)


async def test_page_headers_forbid_inline_script_and_referrers(stack: Stack) -> None:
    async with stack.api(stack.tenant()) as client:
        response = await client.get("/admin")
        assert response.status_code == 200
        policy = response.headers["content-security-policy"]
        assert "script-src 'self'" in policy and "unsafe-inline" not in policy
        assert response.headers["referrer-policy"] == "no-referrer"
        assert (await client.get("/admin/static/js/main.js")).status_code == 200
        assert (await client.get("/admin/static/%2e%2e/pages.py")).status_code == 404
        config = (await client.get("/admin/config.json")).json()
        assert config["live_interval_seconds"] == 5.0


@pytest.fixture
def deployment_sign_in(stack: Stack) -> Iterator[None]:
    """The page configured for a deployment's sign-in (token endpoint and sign-in URL)."""
    development = stack.app.state.admin_page_config  # with the #token= link, as create_app made it
    stack.app.state.admin_page_config = AdminPageConfig(
        token_url="/oauth2/token", sign_in_url="/oauth2/sign_in"
    )
    yield
    stack.app.state.admin_page_config = development


@pytest.mark.usefixtures("deployment_sign_in")
async def test_production_token_comes_from_the_deployments_token_endpoint(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Sso Person")])
    handed_out = [stack.token(tenant.tenant_id, ttl=-600), tenant.token]

    async def token_endpoint(route: Route) -> None:
        # stands in for the OIDC proxy: first an expired token, then a fresh one
        token = handed_out.pop(0) if handed_out else "not-a-jwt"
        await route.fulfill(json={"access_token": token})

    await page.route("**/oauth2/token", token_endpoint)
    await page.goto(f"{stack.base_url}/admin")
    await expect(rows(page)).to_have_count(1)
    assert handed_out == []  # the 401 on the expired token fetched the fresh one
    await expect(page.get_by_role("alert").filter(has_text="Sign in again")).to_have_count(0)

    # once the endpoint has nothing valid, the admin is sent to the deployment's sign-in
    await page.evaluate("sessionStorage.clear()")
    await page.reload()
    link = page.get_by_role("link", name="Sign in again")
    await expect(link).to_have_attribute(
        "href",
        f"{stack.base_url}/oauth2/sign_in?return_to=" + quote(f"{stack.base_url}/admin", safe=""),
    )


async def test_an_expired_token_asks_to_sign_in_again(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    expired = stack.token(tenant.tenant_id, ttl=-600)
    await page.goto(stack.page_url(expired))
    banner = page.get_by_role("alert").filter(has_text="Sign in again")
    await expect(banner).to_be_visible()
    await expect(banner).to_contain_text("Your sign-in has expired or is missing")
    await expect(banner).not_to_contain_text("session-control")
    await expect(rows(page)).to_have_count(0)
    assert await page.evaluate("sessionStorage.getItem('sessionControl.token')") is None


async def test_no_token_at_all_asks_to_sign_in(stack: Stack, page: Page) -> None:
    await page.goto(f"{stack.base_url}/admin")
    await expect(page.get_by_role("alert").filter(has_text="Sign in again")).to_be_visible()


async def test_a_missing_grant_says_which_grant(stack: Stack, page: Page) -> None:
    tenant = stack.tenant(grants=["view_reports"])
    await page.goto(stack.page_url(tenant.token))
    alert = page.get_by_role("alert").filter(has_text="Edit User Sessions")
    await expect(alert).to_be_visible()
    await expect(alert).to_contain_text("The Edit User Sessions grant is missing")
    await expect(rows(page)).to_have_count(0)


async def test_loading_then_empty_state(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route(re.compile(r"/api/v1/sessions\?"), hold)
    await page.goto(stack.page_url(tenant.token))
    state = page.locator("#list-state")
    await expect(state).to_have_text("Loading sessions…")
    await expect(page.locator("#sessions-table")).to_have_attribute("aria-busy", "true")
    release.set()
    await expect(state).to_have_text("There are no active browser or mobile sessions.")
    await expect(page.locator("#sessions-table")).to_have_attribute("aria-busy", "false")
    await expect(page.get_by_role("button", name="Terminate all matching")).to_be_disabled()


async def test_an_unreachable_api_shows_an_error_and_retry_recovers(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Retry Person")])
    await page.route(re.compile(r"/api/v1/sessions\?"), lambda route: route.abort())
    await page.goto(stack.page_url(tenant.token))
    await expect(page.locator("#list-state")).to_contain_text("Sessions could not be loaded.")
    await expect(page.get_by_role("status")).to_contain_text("cannot be reached")

    await page.unroute(re.compile(r"/api/v1/sessions\?"))
    await page.get_by_role("button", name="Try again").click()
    await expect(rows(page)).to_have_count(1)
    await expect(page.locator("#list-state")).to_be_hidden()


async def test_keyboard_only_selection_and_dialog_focus(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    (kim,) = await stack.publish([stack.session(tenant, "Kim Keyboard")])
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(1)

    # every control is a real button or checkbox with a name
    await expect(page.locator("#rows input[type=checkbox]")).to_have_accessible_name(
        f"Select Kim Keyboard, Browser session {kim.session_id}"
    )
    await expect(page.locator("#sessions-table th[aria-sort]")).to_have_count(1)

    box = page.get_by_role("checkbox", name=re.compile("^Select Kim"))
    await box.focus()
    await page.keyboard.press("Space")
    await expect(box).to_be_checked()
    terminate = page.get_by_role("button", name="Terminate", exact=True)
    await terminate.focus()
    await page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="Terminate 1 session?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_have_attribute("aria-modal", "true")
    # focus starts on Cancel and Tab never leaves the dialog
    await expect(dialog.get_by_role("button", name="Cancel")).to_be_focused()
    for _ in range(6):
        await page.keyboard.press("Tab")
        assert await dialog.evaluate("d => d.contains(document.activeElement)")
    for _ in range(6):
        await page.keyboard.press("Shift+Tab")
        assert await dialog.evaluate("d => d.contains(document.activeElement)")
    await page.keyboard.press("Escape")
    await expect(dialog).to_be_hidden()
    await expect(terminate).to_be_focused()
    await expect(rows(page)).to_have_count(1)

    # the detail dialog opens from the keyboard and gives focus back on Escape
    name = page.get_by_role("button", name="Kim Keyboard")
    await name.focus()
    await page.keyboard.press("Enter")
    detail = page.get_by_role("dialog", name="Session of Kim Keyboard")
    await expect(detail).to_be_visible()
    await page.keyboard.press("Escape")
    await expect(detail).to_be_hidden()
    await expect(name).to_be_focused()


async def test_a_refused_termination_is_sent_once_and_says_nothing_was_terminated(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    (kept,) = await stack.publish([stack.session(tenant, "Kept Person")])
    reason = "the command bus (Kafka) is unavailable; nothing was changed, retry"
    asked: list[Any] = []

    async def unavailable(route: Route) -> None:
        asked.append(route.request.post_data_json)
        await route.fulfill(status=503, json={"detail": reason})

    # what the admin API answers while Kafka is down (the server never sees the request: what
    # is tested is what the page makes of the refusal)
    await page.route("**/api/v1/sessions/terminations", unavailable)
    await page.goto(stack.page_url(tenant.token))
    await page.get_by_role("checkbox", name=re.compile("^Select Kept")).check()
    await page.get_by_role("button", name="Terminate", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name="Terminate", exact=True).click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Nothing was terminated")
    await expect(status).to_contain_text("busy or restarting; try again in a minute")
    # the refusal answered the page's own request, which it did not send again by itself, and
    # it is told as a refusal: no notice that the outcome is not known
    assert [body["session_ids"] for body in asked] == [[kept.session_id]]
    await expect(page.locator("#unknown-banner")).to_be_hidden()
    await expect(rows(page)).to_have_count(1)


SEARCHES = re.compile(r".*/api/v1/sessions\?.*q=.*")


async def _search_refused(stack: Stack, page: Page, name: str, answer: dict[str, Any]) -> Locator:
    """A tenant with one session called `name`, its page open; a search for it answered
    `answer` (a response `route.fulfill` takes). The status line, for the test to read; the
    page's "Try again" is then checked to list the session once searches are answered again."""
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, name)])

    async def refused(route: Route) -> None:
        await route.fulfill(**answer)

    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(1)
    await page.route(SEARCHES, refused)
    await page.get_by_role("searchbox").fill(name.split()[0])
    return page.get_by_role("status")


async def _tried_again(page: Page) -> None:
    await page.unroute(SEARCHES)
    await page.get_by_role("button", name="Try again").click()
    await expect(rows(page)).to_have_count(1)


REFUSED_503 = {  # what the admin API answers a search it refuses with a 503 (errors.py)
    "time_limit": (
        "the database stopped this request at its time limit (15s; an exact count 60s): "
        "narrow the search or filter, or retry later",
        "5",
        ("took longer than the session database allows", "narrow it"),
    ),
    "schema_behind": (  # the admin API upgraded before its database was migrated
        "the session database's schema is older than this release of the admin API; nothing "
        "was changed: retry once it is migrated (`session-registry migrate`)",
        "30",
        ("being upgraded", "tell your platform team if it persists"),
    ),
}


@pytest.mark.parametrize("reason", sorted(REFUSED_503))
async def test_a_search_refused_with_a_503_reason_says_what_to_do_and_can_be_tried_again(
    stack: Stack, page: Page, reason: str
) -> None:
    detail, retry_after, said = REFUSED_503[reason]
    body = {"detail": detail, "reason": reason}
    answer = {"status": 503, "json": body, "headers": {"Retry-After": retry_after}}
    status = await _search_refused(stack, page, "Refused Person", answer)
    for words in said:
        await expect(status).to_contain_text(words)
    await expect(status).not_to_contain_text("busy or restarting")  # the reason's own words
    await _tried_again(page)


async def test_a_search_refused_for_the_tenants_budget_says_so_and_can_be_tried_again(
    stack: Stack, page: Page
) -> None:
    detail = (
        "this tenant's searches have used their 30 s per minute of database reading in this "
        "server process; retry in 4 s, or narrow the search"
    )
    # what the admin API answers a search while the tenant owes search time (429)
    answer = {"status": 429, "json": {"detail": detail}, "headers": {"Retry-After": "4"}}
    status = await _search_refused(stack, page, "Budget Person", answer)
    await expect(status).to_contain_text("used their share of the session database")
    await expect(status).to_contain_text("narrow the search")
    await _tried_again(page)


async def test_terminate_all_matching_refused_for_the_tenants_budget_is_sent_once_and_told(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    await stack.publish(
        [
            stack.session(tenant, "Budget Keeper"),
            stack.session(tenant, "Budget Two"),
            stack.session(tenant, "Other Person"),
        ]
    )
    detail = (
        "this tenant's terminations by a filter with a text condition have used their 5 s per "
        "minute of database reading; retry in 40 s, or narrow the search"
    )
    asked: list[Any] = []

    async def spent(route: Route) -> None:
        # what the admin API answers while the tenant's terminations by a text filter owe time
        # (the server never sees the request)
        asked.append(route.request.post_data_json)
        await route.fulfill(status=429, json={"detail": detail}, headers={"Retry-After": "40"})

    await page.route("**/api/v1/sessions/terminations", spent)
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    await page.get_by_role("searchbox").fill("Budget")
    await expect(rows(page)).to_have_count(2)  # the search applied
    await page.get_by_role("button", name="Terminate all matching (2)").click()
    dialog = page.get_by_role("dialog", name="Terminate all 2 matching sessions?")
    await dialog.get_by_role("button", name="Terminate 2 sessions").click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("Nothing was terminated")
    await expect(status).to_contain_text("used their share of the session database")
    # the page asked once, by the search it showed, and did not ask again by itself
    assert [body["filter"]["q"] for body in asked] == ["Budget"], asked
    await expect(page.locator("#unknown-banner")).to_be_hidden()
    await expect(rows(page)).to_have_count(2)


async def test_the_toolbar_waits_for_the_page_to_start_and_a_search_typed_then_filters(
    stack: Stack, page: Page
) -> None:
    # the page starts once its configuration and vocabulary have loaded; a term typed into
    # the search box before that had no listener and was then replaced by the address's
    # (empty) search: the list showed every session (found as a flaky export test)
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Early Anna"), stack.session(tenant, "Other Bob")])
    release = asyncio.Event()

    async def hold(route: Route) -> None:
        await release.wait()
        await route.continue_()

    await page.route("**/vocabulary.json", hold)
    await page.goto(stack.page_url(tenant.token))
    search = page.get_by_role("searchbox")
    # and the buttons, whose click would have done nothing (no listener yet)
    buttons = [page.locator(f"#{b}") for b in ("refresh", "columns-button", "export-csv")]
    for control in (search, page.locator("#outdated-only"), page.locator("#live-mode"), *buttons):
        await expect(control).to_be_disabled()
    await expect(page.locator("#sort-select")).to_be_disabled()
    release.set()
    await expect(search).to_be_enabled()
    for button in buttons:
        await expect(button).to_be_enabled()
    await search.fill("early")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page)).to_contain_text("Early Anna")
    await expect(search).to_have_value("early")
