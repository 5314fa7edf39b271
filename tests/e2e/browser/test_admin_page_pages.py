"""The Session settings and Audit log pages, the termination reason, and the list's manners:
relative times, the view in the URL, filter input checked in plain words, who is signed in,
and a 401 that leaves nothing on screen to act on."""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from datetime import timedelta

import pytest
from admin_stack import Stack, Tenant
from playwright.async_api import Locator, Page, Route, expect

from admin_api.auth import issue_dev_token
from refused_rows import refuse_rows
from session_contracts.models import SessionType

pytestmark = [pytest.mark.browser, pytest.mark.kafka]


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


async def terminate_dialog(page: Page, session_id: str) -> Locator:
    """Select the row of `session_id` and open the selection's confirmation dialog."""
    await page.locator(f'#rows tr[data-session-id="{session_id}"] input.row-select').check()
    await (
        page.get_by_role("region", name="Selected sessions")
        .get_by_role("button", name="Terminate")
        .click()
    )
    return page.get_by_role("dialog", name="Terminate 1 session?")


def first_answer_lost(
    puts: list[int], meanwhile: Callable[[], Awaitable[None]] | None = None
) -> Callable[[Route], Awaitable[None]]:
    """A route handler counting each request in `puts`: the first is served (stored), then
    `meanwhile` runs, and its answer is replaced by a 503 `outcome_unknown` (Kafka took the
    record, the request failed after it); later ones go through."""

    async def handle(route: Route) -> None:
        puts.append(1)
        if len(puts) > 1:
            await route.continue_()
            return
        served = await route.fetch()
        assert served.status == 200, await served.text()
        if meanwhile is not None:
            await meanwhile()
        detail = "the settings were published to login services, but storing them failed"
        await route.fulfill(status=503, json={"detail": detail, "reason": "outcome_unknown"})

    return handle


async def save_with_the_answer_lost(
    page: Page, url: str, answers: Callable[[Route], Awaitable[None]]
) -> Locator:
    """Open the page's settings at `url`, with the browser settings' requests answered by
    `answers` (`first_answer_lost`), save the browser card at 2 hours, idle 30 minutes, and
    see the card say the change may have been saved; the card."""
    await page.route("**/api/v1/settings/sessions/browser", answers)
    await page.goto(url)
    await page.get_by_role("link", name="Session settings").click()
    card = page.locator('.settings-card[data-session-type="browser"]')
    await set_limits(card, ("2", "hours"), ("30", "minutes"))
    await card.get_by_role("button", name="Save Browser settings").click()
    await expect(card.get_by_role("alert")).to_contain_text("may have been saved")
    return card


async def set_limits(card: Locator, longest: tuple[str, str], idle: tuple[str, str]) -> None:
    """Type a settings card's maximum session length and idle timeout, each (number, unit)."""
    await card.get_by_label("Maximum session length", exact=True).fill(longest[0])
    await card.get_by_label("Maximum session length unit").select_option(longest[1])
    await card.get_by_label("Idle timeout", exact=True).fill(idle[0])
    await card.get_by_label("Idle timeout unit").select_option(idle[1])


async def test_settings_page_edits_with_validation_and_ends_outdated_sessions(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    mobile = await stack.publish(
        [stack.session(tenant, f"Phone {n}", session_type=SessionType.mobile) for n in range(2)]
    )
    (laptop,) = await stack.publish([stack.session(tenant, "Laptop")])
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    await page.get_by_role("link", name="Session settings").click()
    await expect(page).to_have_url(re.compile(r"\?view=settings$"))
    card = page.locator('.settings-card[data-session-type="mobile"]')
    await expect(card).to_contain_text(
        "Now: at most 180 days, ending after 30 days without activity"
    )
    await expect(card).to_contain_text(
        "All 2 active Mobile sessions run under the current settings."
    )

    # an idle timeout longer than the session: refused in words, nothing saved
    await set_limits(card, ("2", "hours"), ("3", "hours"))
    await card.get_by_role("button", name="Save Mobile settings").click()
    await expect(card.get_by_role("alert")).to_have_text(
        "The idle timeout cannot be longer than the maximum session length."
    )
    await expect(card.get_by_label("Idle timeout", exact=True)).to_be_focused()
    async with stack.api(tenant) as api:
        (current,) = [
            s
            for s in (await api.get("/api/v1/settings/sessions")).json()["items"]
            if s["session_type"] == "mobile"
        ]
        assert current["is_default"] is True

    await card.get_by_label("Idle timeout", exact=True).fill("30")
    await card.get_by_label("Idle timeout unit").select_option("minutes")
    await expect(card.locator(".hint")).to_contain_text("The 2 active Mobile sessions keep their")
    await card.get_by_role("button", name="Save Mobile settings").click()
    await expect(card).to_contain_text("Now: at most 2 hours, ending after 30 minutes")
    await expect(card).to_contain_text("Changed by admin-1")
    await expect(card).to_contain_text("2 active Mobile sessions of 2 were created under older")

    await card.get_by_role("button", name="End 2 outdated sessions…").click()
    dialog = page.get_by_role("dialog", name="Terminate all 2 matching sessions?")
    await expect(dialog).to_contain_text(
        "Mobile sessions created under settings that are no longer current"
    )
    await dialog.get_by_role("button", name="Terminate 2 sessions").click()
    await expect(card).to_contain_text(
        "All 0 active Mobile sessions run under the current settings."
    )
    async with stack.api(tenant) as api:
        left = (await api.get("/api/v1/sessions")).json()["items"]
        assert [s["session_id"] for s in left] == [laptop.session_id]
        for one in mobile:
            detail = (await api.get(f"/api/v1/sessions/{one.session_id}")).json()
            assert detail["state"] == "terminated"


async def test_a_settings_change_on_a_page_read_before_another_admins_is_not_saved_and_says_so(
    stack: Stack, page: Page
) -> None:
    """Two admins who read the same settings could each save, and the later undid the earlier
    without knowing of it: an incident's tightening undone by a page loaded before it (a
    review, stop 71). The page sends the settings' tag as `If-Match`; refused, it shows the
    settings as they are now and says why. The other admin's name is shown isolated, flagged."""
    tenant = stack.tenant()
    await page.goto(stack.page_url(tenant.token))
    await page.get_by_role("link", name="Session settings").click()
    card = page.locator('.settings-card[data-session-type="browser"]')
    await expect(card).to_contain_text("Now: at most 30 days")

    other = issue_dev_token(stack.settings, "\u0430dmin-2", tenant.tenant_id)
    async with stack.api(Tenant(tenant.tenant_id, other)) as api:
        tight = {"max_session_seconds": 3600, "idle_timeout_seconds": 600}
        assert (await api.put("/api/v1/settings/sessions/browser", json=tight)).status_code == 200

    await set_limits(card, ("30", "days"), ("8", "hours"))
    await card.get_by_role("button", name="Save Browser settings").click()
    await expect(page.locator("#status")).to_contain_text(
        "The session settings changed since this page read them"
    )
    await expect(card).to_contain_text("Now: at most 1 hour, ending after 10 minutes")
    await expect(card).to_contain_text("Changed by \u2068\u0430dmin-2\u2069")
    await expect(card.locator(".badge")).to_have_text(["Mixed scripts"])
    async with stack.api(tenant) as api:
        items = (await api.get("/api/v1/settings/sessions")).json()["items"]
    (browser,) = [s for s in items if s["session_type"] == "browser"]
    assert browser["max_session_seconds"] == 3600  # the other admin's change stands

    # on the settings as they are now, the change is made
    await set_limits(card, ("2", "hours"), ("30", "minutes"))
    await card.get_by_role("button", name="Save Browser settings").click()
    await expect(card).to_contain_text("Now: at most 2 hours, ending after 30 minutes")
    await expect(page.locator("#status")).to_contain_text("Browser settings saved")


async def test_limits_set_in_seconds_that_are_no_whole_minutes_are_shown_and_saved(
    stack: Stack, page: Page
) -> None:
    """The API takes any number of seconds from 60; the page showed 3,601 s as "60.016666666666666
    minutes", read its own field back as no number, and refused every save (a review, stop
    71)."""
    tenant = stack.tenant()
    async with stack.api(tenant) as api:
        odd = {"max_session_seconds": 3601, "idle_timeout_seconds": 90}
        assert (await api.put("/api/v1/settings/sessions/browser", json=odd)).status_code == 200
    await page.goto(stack.page_url(tenant.token))
    await page.get_by_role("link", name="Session settings").click()
    card = page.locator('.settings-card[data-session-type="browser"]')
    await expect(card).to_contain_text("Now: at most 3601 seconds, ending after 90 seconds")
    await expect(card.get_by_label("Idle timeout", exact=True)).to_have_value("90")
    await expect(card.get_by_label("Idle timeout unit")).to_have_value("seconds")
    await card.get_by_label("Idle timeout", exact=True).fill("2")
    await card.get_by_label("Idle timeout unit").select_option("minutes")
    await card.get_by_role("button", name="Save Browser settings").click()
    await expect(card).to_contain_text("Now: at most 3601 seconds, ending after 2 minutes")
    # a card whose limits are whole minutes offers no seconds
    mobile = page.locator('.settings-card[data-session-type="mobile"]')
    units = mobile.get_by_label("Idle timeout unit").locator("option")
    await expect(units).to_have_text(["minutes", "hours", "days"])


async def test_after_an_unknown_answer_a_change_another_admin_made_meanwhile_is_not_undone(
    stack: Stack, page: Page
) -> None:
    """The page's tag covers every type: after an answer it could not read, it took the new
    tag when the type it saved looked right, and a later save of a card still showing another
    admin's older values undid that admin's change (a review, stop 71). Now any other change
    keeps the old tag, and saving again is refused and shown."""
    tenant = stack.tenant()
    other = issue_dev_token(stack.settings, "admin-2", tenant.tenant_id)
    puts: list[int] = []

    async def another_admin_saves() -> None:
        async with stack.api(Tenant(tenant.tenant_id, other)) as api:
            mobile = {"max_session_seconds": 7200, "idle_timeout_seconds": 900}
            assert (
                await api.put("/api/v1/settings/sessions/mobile", json=mobile)
            ).status_code == 200

    card = await save_with_the_answer_lost(
        page, stack.page_url(tenant.token), first_answer_lost(puts, another_admin_saves)
    )

    await card.get_by_role("button", name="Save Browser settings").click()
    await expect(page.locator("#status")).to_contain_text(
        "The session settings changed since this page read them"
    )
    mobile_card = page.locator('.settings-card[data-session-type="mobile"]')
    await expect(mobile_card).to_contain_text("Now: at most 2 hours, ending after 15 minutes")
    await expect(mobile_card).to_contain_text("Changed by admin-2")
    assert len(puts) == 2


async def test_a_settings_change_whose_answer_is_unknown_may_be_saved_and_is_saved_again(
    stack: Stack, page: Page
) -> None:
    """The admin API stores the change and its answer is replaced by a 503 `outcome_unknown`
    (Kafka took the record, the request failed after it). Before, the card said "The settings
    were not saved" while login services had them."""
    tenant = stack.tenant()
    puts: list[int] = []

    card = await save_with_the_answer_lost(
        page, stack.page_url(tenant.token), first_answer_lost(puts)
    )
    await expect(card.get_by_role("alert")).not_to_contain_text("were not saved")
    await expect(page.locator("#status")).to_contain_text("could not confirm it, so it may be")

    async with page.expect_response(
        lambda r: r.request.method == "PUT" and r.url.endswith("/settings/sessions/browser")
    ) as saved:
        await card.get_by_role("button", name="Save Browser settings").click()
    assert (await saved.value).status == 200  # stored again: the same settings
    await expect(card).to_contain_text("Now: at most 2 hours, ending after 30 minutes")
    assert len(puts) == 2


async def test_reason_is_recorded_and_the_audit_page_shows_it(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    ended, _kept = await stack.publish(
        [stack.session(tenant, "Mallory Suspect"), stack.session(tenant, "Trent Fine")]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(2)
    dialog = await terminate_dialog(page, ended.session_id)
    await dialog.get_by_label("Reason (recorded in the audit log)").select_option("security")
    await dialog.get_by_role("button", name="Terminate", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("1 session was ended.")

    await page.get_by_role("link", name="Audit log").click()
    entry = page.locator("#audit-body tbody tr")
    await expect(entry).to_have_count(1)
    await expect(entry.locator("td")).to_have_text(
        [
            re.compile(r"ago|now"),
            "admin-1",
            "Security concern",
            re.compile("^1 session: "),
            "1",
            "1",
            "Done",
        ]
    )
    async with stack.api(tenant) as api:
        (audit,) = (await api.get("/api/v1/audit/terminations")).json()["items"]
        assert audit["reason"] == "security"

    # the link opens the session it ended, with the reason in its history
    await entry.get_by_role("button", name=f"Open session {ended.session_id}").click()
    detail = page.get_by_role("dialog", name="Session")
    await expect(detail).to_contain_text("Mallory Suspect")
    await expect(detail.locator(".history")).to_contain_text("reason: Security concern")
    await expect(detail.get_by_role("button", name="Terminate…")).to_be_hidden()
    await detail.get_by_role("button", name="Close").click()

    # filters: another admin's requests, and a reversed time range said in words
    await page.get_by_label("Admin (user id)").fill("someone-else")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#audit-body")).to_have_text("No terminations match.")
    await page.get_by_label("Admin (user id)").fill("admin-1")
    await page.get_by_label("From (your local time)").fill("2026-11-30T10:00")
    await page.get_by_label("To", exact=True).fill("2026-11-30T09:00")
    await page.get_by_role("button", name="Apply").click()
    await expect(page.locator("#audit-filters").get_by_role("alert")).to_have_text(
        "“From” must be earlier than “To”: this range contains no time at all."
    )


async def test_a_termination_the_registry_gives_up_says_so_and_the_audit_says_failed(
    stack: Stack, page: Page
) -> None:
    """The registry cannot apply it (its database refuses this tenant's applied rows, a
    stand-in for any value it refuses): the page stopped waiting only at its deadline and said
    "not applied yet; refresh in a moment" before revision 1601, and the audit said Pending."""
    tenant = stack.tenant()
    (target,) = await stack.publish([stack.session(tenant, "Gives Up")])
    await refuse_rows(stack.registry.store, "applied_commands", "tenant_id", tenant.tenant_id)
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(1)
    dialog = await terminate_dialog(page, target.session_id)
    await dialog.get_by_role("button", name="Terminate", exact=True).click()
    status = page.get_by_role("status")
    await expect(status).to_contain_text("The termination could not be applied (command ")
    await expect(status).to_contain_text("an operator can retry it from the dead-letter topic.")
    await expect(status).to_have_class(re.compile(r"\bstatus-error\b"))
    await expect(rows(page)).to_have_count(1)  # nothing ended: the row stays

    await page.get_by_role("link", name="Audit log").click()
    entry = page.locator("#audit-body tbody tr")
    await expect(entry).to_have_count(1)
    await expect(entry.locator("td").nth(5)).to_have_text("0")
    await expect(entry.locator("td").nth(6)).to_have_text("Failed")


async def test_times_url_state_validation_and_who(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    await stack.publish(
        [
            stack.session(tenant, "Old Owl", created_ago=timedelta(hours=3)),
            stack.session(tenant, "New Newt", created_ago=timedelta(minutes=5)),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(2)
    await expect(page.locator("#who")).to_have_text(
        f"Signed in as admin-1 · tenant {tenant.tenant_id}"
    )
    created = page.locator("#rows tr").first.locator('td[data-column="created_at"] time')
    await expect(created).to_have_text("5 min. ago")
    await expect(created).to_have_attribute("title", re.compile(r"\d{1,2}:\d{2}:\d{2}"))
    assert await created.evaluate("e => getComputedStyle(e).textDecorationLine") == "none"

    # sort, a filter and live mode go into the address and survive a reload
    await page.get_by_role("button", name="Name", exact=True).click()
    await page.get_by_role("checkbox", name="Live (every 5 s)").check()
    await page.get_by_role("button", name="Filter Session Type").click()
    await page.get_by_role("dialog").get_by_label("Browser").check()
    await page.get_by_role("dialog").get_by_role("button", name="Apply").click()
    await expect(page).to_have_url(re.compile(r"session_type=browser.*sort=user_name.*live=1"))
    await page.reload()
    await expect(page.get_by_role("checkbox", name="Live (every 5 s)")).to_be_checked()
    await expect(page.locator("#filter-chips")).to_contain_text("Session Type: Browser")
    await expect(page.locator('th[data-column="user_name"]')).to_have_attribute(
        "aria-sort", "ascending"
    )
    await expect(page.locator(".name-cell .link-button")).to_have_text(["New Newt", "Old Owl"])
    # another page and back: the list keeps its view
    await page.get_by_role("link", name="Audit log").click()
    await expect(page).to_have_url(re.compile(r"\?view=audit$"))
    await page.get_by_role("link", name="Active sessions").click()
    await expect(page).to_have_url(re.compile(r"session_type=browser.*sort=user_name.*live=1"))
    await expect(page.locator("#filter-chips")).to_contain_text("Session Type: Browser")

    # a partial address is refused in the dialog, in words, and nothing is asked of the API
    await page.get_by_role("button", name="Filter IP Address").click()
    dialog = page.get_by_role("dialog", name="Filter IP Address")
    await dialog.get_by_role("textbox").fill("10.0.0")
    await dialog.get_by_role("button", name="Apply").click()
    await expect(dialog.get_by_role("alert")).to_contain_text(
        "“10.0.0” is not a complete IPv4 address"
    )
    await expect(dialog.get_by_role("textbox")).to_have_attribute("aria-invalid", "true")
    await dialog.get_by_role("button", name="Cancel").click()
    assert "ip_address" not in page.url

    # a reversed range too
    await page.get_by_role("button", name="Filter Created").click()
    dialog = page.get_by_role("dialog", name="Filter Created")
    await dialog.get_by_label("From").fill("2026-11-30T10:00")
    await dialog.get_by_label("To").fill("2026-11-30T09:00")
    await dialog.get_by_role("button", name="Apply").click()
    await expect(dialog.get_by_role("alert")).to_have_text(
        "“From” must be earlier than “To”: this range contains no time at all."
    )
    await dialog.get_by_role("button", name="Cancel").click()


async def test_a_401_clears_the_rows_and_disables_every_action(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, "Ada Lovelace"), stack.session(tenant, "Bo")])
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(2)
    await page.locator("#rows tr input.row-select").first.check()

    async def expired(route: Route) -> None:
        await route.fulfill(status=401, json={"detail": "token expired"})

    await page.route(re.compile(r"/api/v1/"), expired)
    await page.get_by_role("button", name="Refresh").click()
    await expect(page.get_by_role("alert").first).to_contain_text(
        "Your sign-in has expired or is missing."
    )
    await expect(rows(page)).to_have_count(0)
    await expect(page.get_by_role("region", name="Selected sessions")).to_be_hidden()
    for control in ("#terminate-matching", "#export-csv", "#refresh", "#live-mode", "#search"):
        await expect(page.locator(control)).to_be_disabled()
    await expect(page.locator("#who")).to_be_hidden()
    assert "session-control" not in await page.locator("#auth-banner").inner_text()
