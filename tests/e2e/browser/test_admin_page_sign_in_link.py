"""The `#token=` sign-in link: ignored by a production page, never a silent switch in development.

A link to `/admin#token=<token>` is something anyone can send an admin. In production the page
takes its token only from the deployment's token hook, so an attacker's link (even with a valid
token of the attacker's own tenant) must not switch the admin's tab to that tenant.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from admin_stack import Stack, serve
from playwright.async_api import BrowserContext, Locator, Page, Route, expect

from admin_api.app import create_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

PRODUCTION_SECRET = "production-" + "p" * 40
ISSUER = "https://sso.example.test"
TOKEN_KEY = "sessionStorage.getItem('sessionControl.token')"
PROXY_HEADER = "X-Forwarded-Access-Token"


@dataclass
class Production:
    """The admin API as deployed in production, on the stack's read model and topics."""

    base_url: str
    settings: AdminApiSettings

    def token(self, tenant_id: str) -> str:
        """A token the production API accepts (what its identity provider would issue)."""
        return issue_dev_token(self.settings, "admin-1", tenant_id)


@pytest.fixture(scope="module")
async def production(stack: Stack) -> AsyncIterator[Production]:
    shared = stack.settings
    settings = AdminApiSettings(
        _env_file=None,
        environment="production",
        jwt_secret=PRODUCTION_SECRET,
        jwt_issuer=ISSUER,
        database_url=shared.database_url,
        kafka_bootstrap_servers=shared.kafka_bootstrap_servers,
        topic_prefix=shared.topic_prefix,
        topic_partitions=shared.topic_partitions,
        admin_page_token_header=PROXY_HEADER,
    )
    app = create_app(settings)
    server, task, base_url = await serve(app, stack.logs)
    try:
        yield Production(base_url, settings)
    finally:
        server.should_exit = True
        await task


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


async def test_a_production_page_ignores_a_sign_in_link_and_stays_in_the_admins_tenant(
    stack: Stack, production: Production, page: Page, context: BrowserContext
) -> None:
    admin, attacker = stack.tenant(), stack.tenant()
    await stack.publish(
        [stack.session(admin, "Admin Own"), stack.session(attacker, "Attacker Bait")]
    )
    admin_token, attacker_token = (production.token(t.tenant_id) for t in (admin, attacker))

    async def through_the_proxy(route: Route) -> None:
        # what oauth2-proxy --pass-access-token adds to the request for the signed-in admin
        headers = {**route.request.headers, PROXY_HEADER.lower(): admin_token}
        await route.continue_(headers=headers)

    await page.route("**/admin/token", through_the_proxy)
    page_url = f"{production.base_url}/admin"
    await page.goto(page_url)
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("Admin Own")

    # the attacker's link, followed in the admin's tab
    await page.goto("about:blank")
    await page.goto(f"{page_url}#token={attacker_token}")
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("Admin Own")
    assert await page.evaluate(TOKEN_KEY) == admin_token
    assert page.url == page_url
    ignored = page.get_by_role("alert").filter(has_text="A sign-in link was ignored")
    await expect(ignored).to_be_visible()

    # the same link followed while the page is open changes only the fragment
    await ignored.get_by_role("button", name="Dismiss").click()
    await expect(ignored).to_be_hidden()
    await page.evaluate("token => { location.hash = 'token=' + token; }", attacker_token)
    await expect(ignored).to_be_visible()
    await expect(page).to_have_url(page_url)
    await page.get_by_role("button", name="Refresh").click()
    await expect(rows(page).first).to_contain_text("Admin Own")
    assert await page.evaluate(TOKEN_KEY) == admin_token

    # a new tab with no sign-in of its own is not signed in by the link either
    tab = await context.new_page()
    await tab.goto(f"{page_url}#token={attacker_token}")
    await expect(tab.get_by_role("alert").filter(has_text="Sign in again")).to_be_visible()
    assert tab.url == page_url
    assert await tab.evaluate(TOKEN_KEY) is None
    await expect(rows(tab)).to_have_count(0)


async def test_in_development_a_link_of_another_tenant_asks_before_switching(
    stack: Stack, page: Page
) -> None:
    first, second = stack.tenant(), stack.tenant()
    await stack.publish([stack.session(first, "First Person"), stack.session(second, "Second One")])
    await page.goto(stack.page_url(first.token))
    await expect(rows(page).first).to_contain_text("First Person")

    await page.goto("about:blank")
    await page.goto(stack.page_url(second.token))
    await expect(rows(page)).to_have_count(1)
    await expect(rows(page).first).to_contain_text("First Person")
    assert await page.evaluate(TOKEN_KEY) == first.token
    assert page.url == f"{stack.base_url}/admin"
    asked = page.get_by_role("alert").filter(has_text="This sign-in link is for another account")
    await expect(asked).to_be_visible()
    await expect(asked).to_contain_text(f"signed in as admin-1 of tenant {first.tenant_id}")
    await expect(asked).to_contain_text(f"the link is for admin-1 of tenant {second.tenant_id}")

    await asked.get_by_role("button", name=f"Switch to tenant {second.tenant_id}").click()
    await expect(rows(page).first).to_contain_text("Second One")
    await expect(asked).to_be_hidden()
    assert await page.evaluate(TOKEN_KEY) == second.token

    # a fresh token of the same admin and tenant is taken without asking
    fresh = stack.token(second.tenant_id, ttl=7200)
    await page.goto("about:blank")
    await page.goto(stack.page_url(fresh))
    await expect(rows(page).first).to_contain_text("Second One")
    await expect(asked).to_be_hidden()
    assert await page.evaluate(TOKEN_KEY) == fresh
