"""Terminating sessions in Chromium: selection ribbon, confirmation, refresh, live mode, demo."""

from __future__ import annotations

import re

import pytest
from admin_stack import Stack, terminate_the_contractors
from playwright.async_api import Browser, Locator, Page, Route, expect

from polling import until
from session_contracts.models import SessionType

pytestmark = [pytest.mark.browser, pytest.mark.kafka]


def rows(page: Page) -> Locator:
    return page.locator("#rows tr")


def names(page: Page) -> Locator:
    return page.locator("#rows tr .name-cell .link-button")


def select_box(page: Page, session_id: str) -> Locator:
    return page.locator(f'#rows tr[data-session-id="{session_id}"] input.row-select')


async def test_terminate_selected_sessions_after_confirmation(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    ada, grace, alan = await stack.publish(
        [
            stack.session(tenant, "Ada Lovelace"),
            stack.session(tenant, "Grace Hopper", session_type=SessionType.mobile),
            stack.session(tenant, "Alan Turing"),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    ribbon = page.get_by_role("region", name="Selected sessions")
    await expect(ribbon).to_be_hidden()

    await select_box(page, ada.session_id).check()
    await select_box(page, grace.session_id).check()
    await expect(ribbon).to_be_visible()
    await expect(ribbon).to_contain_text("2 sessions selected")
    assert await ribbon.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(29, 95, 209)"

    # Cancel changes nothing
    await ribbon.get_by_role("button", name="Terminate").click()
    dialog = page.get_by_role("dialog", name="Terminate 2 sessions?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("cannot be undone")
    listed = dialog.locator("tbody tr")
    await expect(listed).to_have_count(2)
    await expect(listed.nth(0).locator("td")).to_have_text(
        ["Ada Lovelace", "Browser", ada.session_id]
    )
    await expect(listed.nth(1).locator("td")).to_have_text(
        ["Grace Hopper", "Mobile", grace.session_id]
    )
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_be_hidden()
    await expect(rows(page)).to_have_count(3)
    await expect(ribbon).to_contain_text("2 sessions selected")
    async with stack.api(tenant) as api:
        assert (await api.get("/api/v1/sessions")).json()["total"] == 3

    # Terminate ends them
    await ribbon.get_by_role("button", name="Terminate").click()
    await dialog.get_by_role("button", name="Terminate", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text("2 sessions were ended.")
    await expect(names(page)).to_have_text(["Alan Turing"])
    await expect(ribbon).to_be_hidden()
    async with stack.api(tenant) as api:
        listed_now = (await api.get("/api/v1/sessions")).json()
        assert [s["session_id"] for s in listed_now["items"]] == [alan.session_id]
        detail = (await api.get(f"/api/v1/sessions/{ada.session_id}")).json()
        assert detail["state"] == "terminated"


async def test_select_all_selects_the_loaded_rows(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    events = await stack.publish([stack.session(tenant, f"User {n}") for n in range(4)])
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(4)
    select_all = page.get_by_role("checkbox", name="Select all loaded sessions")

    await select_all.check()
    for event in events:
        await expect(select_box(page, event.session_id)).to_be_checked()
    await expect(page.get_by_role("region", name="Selected sessions")).to_contain_text(
        "4 sessions selected"
    )
    await select_box(page, events[0].session_id).uncheck()
    assert await select_all.evaluate("e => e.indeterminate") is True
    await expect(page.get_by_role("region", name="Selected sessions")).to_contain_text(
        "3 sessions selected"
    )
    await select_all.click()  # from indeterminate: all of them again
    await expect(page.get_by_role("region", name="Selected sessions")).to_contain_text(
        "4 sessions selected"
    )
    await select_all.uncheck()
    await expect(page.get_by_role("region", name="Selected sessions")).to_be_hidden()
    await expect(page.locator("#rows input.row-select:checked")).to_have_count(0)


async def test_terminate_all_matching_the_search_shows_the_count(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    await stack.publish(
        [
            *(stack.session(tenant, f"Contractor {n}") for n in range(3)),
            stack.session(tenant, "Employee One"),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(4)
    await page.get_by_role("searchbox").fill("contractor")
    await expect(rows(page)).to_have_count(3)

    await page.get_by_role("button", name="Terminate all matching (3)").click()
    dialog = page.get_by_role("dialog", name="Terminate all 3 matching sessions?")
    await expect(dialog).to_be_visible()
    await expect(dialog).to_contain_text("3 sessions match right now")
    await expect(dialog).to_contain_text("Search: “contractor”")
    await expect(dialog).to_contain_text("cannot be undone")
    await dialog.get_by_role("button", name="Terminate 3 sessions").click()

    await expect(page.get_by_role("status")).to_have_text("3 sessions were ended.")
    await expect(page.locator("#list-state")).to_have_text(
        "No active sessions match the current search and filters."
    )
    await page.get_by_role("searchbox").fill("")
    await expect(names(page)).to_have_text(["Employee One"])


async def test_refresh_keeps_filters_sort_and_selection(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    anna, boris, _ = await stack.publish(
        [
            stack.session(tenant, "Anna Browser"),
            stack.session(tenant, "Boris Browser"),
            stack.session(tenant, "Mia Mobile", session_type=SessionType.mobile),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    await page.get_by_role("button", name="Filter Session Type", exact=True).click()
    await page.get_by_role("dialog").get_by_role("checkbox", name="Browser").check()
    await page.get_by_role("dialog").get_by_role("button", name="Apply").click()
    await page.get_by_role("button", name=re.compile("^Name")).click()
    await expect(names(page)).to_have_text(["Anna Browser", "Boris Browser"])
    await select_box(page, anna.session_id).check()
    await select_box(page, boris.session_id).check()

    # meanwhile: a new browser session starts and Boris's session is ended elsewhere
    (carl,) = await stack.publish([stack.session(tenant, "Carl Browser")])
    async with stack.api(tenant) as api:
        accepted = await api.post(
            "/api/v1/sessions/terminations", json={"session_ids": [boris.session_id]}
        )
        assert accepted.status_code == 202
    await stack.registry.wait_until_idle(60)
    await expect(names(page)).to_have_text(["Anna Browser", "Boris Browser"])

    await page.get_by_role("button", name="Refresh").click()
    await expect(names(page)).to_have_text(["Anna Browser", "Carl Browser"])
    await expect(page.get_by_role("group", name="Active filters")).to_contain_text(
        "Session Type: Browser"
    )
    await expect(page.locator('th[data-column="user_name"]')).to_have_attribute(
        "aria-sort", "ascending"
    )
    await expect(select_box(page, anna.session_id)).to_be_checked()
    await expect(select_box(page, carl.session_id)).not_to_be_checked()
    await expect(page.get_by_role("region", name="Selected sessions")).to_contain_text(
        "1 session selected"
    )


async def test_live_mode_shows_sessions_starting_and_ending(stack: Stack, page: Page) -> None:
    tenant = stack.tenant()
    (first,) = await stack.publish([stack.session(tenant, "First Person")])
    # The poll's interval on a clock the test moves: each poll comes when the test has the
    # change in place, not 5 s of real time later (three waits of 5-6 s before)
    await page.clock.install()
    await page.goto(stack.page_url(tenant.token))
    await expect(names(page)).to_have_text(["First Person"])
    live = page.get_by_role("checkbox", name=re.compile("^Live"))
    await expect(live).to_have_accessible_name(re.compile(r"every 5 s"))
    await live.check()

    # a poll moves no row: the change is announced and shown on request
    await stack.publish([stack.session(tenant, "Second Person")])
    await page.clock.fast_forward(5_000)
    show = page.get_by_role("button", name=re.compile(r"sessions? changed — show$"))
    await show.click()
    await expect(names(page)).to_have_text(["Second Person", "First Person"])
    async with stack.api(tenant) as api:
        await api.post("/api/v1/sessions/terminations", json={"session_ids": [first.session_id]})
    await stack.registry.wait_until_idle(60)
    await page.clock.fast_forward(5_000)
    await show.click()
    await expect(names(page)).to_have_text(["Second Person"])

    # live mode off: past its interval, the page asks for nothing and shows no change
    await live.uncheck()
    await stack.publish([stack.session(tenant, "Third Person")])
    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    await page.clock.fast_forward(6_000)
    await page.wait_for_timeout(1_000)  # real time: a poll's request would be seen by now
    assert not [url for url in asked if "/api/v1/sessions" in url], asked
    await expect(names(page)).to_have_text(["Second Person"])


async def test_a_terminated_demo_session_lands_on_sign_in(
    stack: Stack, browser: Browser, page: Page
) -> None:
    assert stack.demo is not None, "the demo service is part of the stack"
    user = await browser.new_context()
    try:
        user_page = await user.new_page()
        await user_page.goto(f"{stack.demo.base_url}/signin")
        await user_page.get_by_label("User name").fill("Dora Demo")
        await user_page.get_by_role("button", name="Sign in").click()
        await expect(user_page.locator("#who")).to_contain_text("Dora Demo")
        await stack.registry.wait_until_idle(60)

        await user_page.goto(f"{stack.demo.base_url}/reports")
        await expect(user_page.get_by_role("heading", name="Reports")).to_be_visible()

        await page.goto(stack.page_url(stack.demo.tenant.token))
        row = page.locator("#rows tr", has_text="Dora Demo")
        await expect(row).to_have_count(1)
        await row.get_by_role("checkbox").check()
        await page.get_by_role("button", name="Terminate", exact=True).click()
        await page.get_by_role("dialog").get_by_role("button", name="Terminate", exact=True).click()
        await expect(page.get_by_role("status")).to_have_text("1 session was ended.")
        await expect(row).to_have_count(0)

        session_id = next(c["value"] for c in await user.cookies() if c["name"] == "sid")
        await stack.demo.wait_until_revoked(session_id)
        await user_page.goto(f"{stack.demo.base_url}/reports")
        await expect(user_page).to_have_url(re.compile(r"/signin\?ended=admin$"))
        await expect(user_page.get_by_role("heading", name="Sign in")).to_be_visible()
        await expect(user_page.get_by_role("status")).to_have_text(
            "An administrator ended your session. Sign in again to continue."
        )
    finally:
        await user.close()


async def test_a_session_its_producer_dates_ahead_is_listed_as_appended_and_ended_by_filter(
    stack: Stack, page: Page
) -> None:
    # the platform's clock ten minutes ahead: `sessions.events` is dated by the broker, and a
    # creation dated after its record was appended is taken as created then (docs/security.md),
    # so it is not dated ahead of the list and "Terminate all matching" ends it
    tenant = await stack.one_dated_ahead()
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(3)
    await expect(page.locator("#rows .badge")).to_have_count(0)

    await terminate_the_contractors(page)
    await expect(page.get_by_role("status")).to_have_text("2 sessions were ended.")
    await expect(rows(page)).to_have_count(0)
    await page.get_by_role("searchbox").fill("")
    await expect(names(page)).to_have_text(["Employee One"])


async def test_ending_fewer_than_confirmed_says_the_others_had_ended_meanwhile(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    ada, grace = await stack.publish(
        [stack.session(tenant, "Ada Lovelace"), stack.session(tenant, "Grace Hopper")]
    )
    await page.goto(stack.page_url(tenant.token))
    await expect(rows(page)).to_have_count(2)
    await select_box(page, ada.session_id).check()
    await select_box(page, grace.session_id).check()

    # another admin ends Grace's session while this page still lists it
    async with stack.api(tenant) as api:
        asked = await api.post(
            "/api/v1/sessions/terminations", json={"session_ids": [grace.session_id]}
        )
        assert asked.status_code == 202, asked.text

        async def ended() -> bool:
            detail = (await api.get(f"/api/v1/sessions/{grace.session_id}")).json()
            return bool(detail["state"] == "terminated")

        await until(ended, 30, "the other admin's termination applied")

    ribbon = page.get_by_role("region", name="Selected sessions")
    await ribbon.get_by_role("button", name="Terminate").click()
    await page.get_by_role("dialog").get_by_role("button", name="Terminate", exact=True).click()
    await expect(page.get_by_role("status")).to_have_text(
        "1 session was ended of the 2 confirmed: the others had ended meanwhile."
    )
    await expect(rows(page)).to_have_count(0)


async def terminate_on_the_page(page: Page, url: str, session_id: str) -> None:
    """Open the page at `url`, select the row of `session_id` and confirm its termination."""
    await page.goto(url)
    await select_box(page, session_id).check()
    await page.get_by_role("button", name="Terminate", exact=True).click()
    await page.get_by_role("dialog").get_by_role("button", name="Terminate", exact=True).click()


TERMINATIONS = "**/api/v1/sessions/terminations"
LIST = re.compile(r".*/api/v1/sessions\?.*")
STATUS = re.compile(r".*/api/v1/sessions/terminations/[0-9a-f-]+$")


@pytest.mark.parametrize("lost", ["no answer", "503 outcome_unknown", "502 from a proxy"])
async def test_a_termination_whose_answer_is_lost_may_be_applied_and_try_again_is_the_same_one(
    stack: Stack, page: Page, lost: str
) -> None:
    """The request reaches the admin API, which publishes the command (the registry ends the
    session), and its answer never reaches the page. Before, the page said "Nothing was
    terminated" for any such failure, and a second click was a second command."""
    tenant = stack.tenant()
    (kept,) = await stack.publish([stack.session(tenant, "Lost Answer")])
    keys: list[str | None] = []
    listed_after: list[int] = []

    async def list_down(route: Route) -> None:
        # the same outage: the list's refresh after the termination fails too, and must not
        # take the notice and its Try again with it (found by a review)
        listed_after.append(1)
        await route.fulfill(status=503, json={"detail": "the session database is unavailable"})

    async def answer_lost(route: Route) -> None:
        keys.append(await route.request.header_value("Idempotency-Key"))
        if len(keys) > 1:
            await route.continue_()
            return
        await page.route(LIST, list_down)
        served = await route.fetch()  # the admin API takes it: 202, the command published
        assert served.status == 202, await served.text()
        if lost == "no answer":
            await route.abort("connectionreset")
        elif lost == "503 outcome_unknown":
            detail = "Kafka did not acknowledge in time; the change may still be applied"
            await route.fulfill(status=503, json={"detail": detail, "reason": "outcome_unknown"})
        else:
            await route.fulfill(status=502, body="Bad Gateway")

    await page.route(TERMINATIONS, answer_lost)
    await terminate_on_the_page(page, stack.page_url(tenant.token), kept.session_id)
    notice = page.locator("#unknown-banner")
    await expect(notice).to_contain_text("The termination of 1 session may have been applied")
    # the refresh's own failure, told on the status line, after the notice was shown
    await expect(page.get_by_role("status")).to_contain_text("busy or restarting")
    assert listed_after
    await expect(notice).to_contain_text("The termination of 1 session may have been applied")
    await expect(notice).not_to_contain_text("Nothing was")

    await page.unroute(LIST, list_down)
    await notice.get_by_role("button", name="Try again").click()
    await expect(notice).to_be_hidden()
    await expect(page.get_by_role("status")).to_have_text("1 session was ended.")
    assert len(keys) == 2 and keys[0] and keys[0] == keys[1], keys  # the same request, named
    async with stack.api(tenant) as api:
        audit = (await api.get("/api/v1/audit/terminations")).json()["items"]
        assert len(audit) == 1, audit  # one command, not two
        assert audit[0]["target"] == {"session_ids": [kept.session_id]}
        detail = (await api.get(f"/api/v1/sessions/{kept.session_id}")).json()
        assert detail["state"] == "terminated"


async def test_a_retry_refused_leaves_the_first_requests_outcome_unknown_not_nothing_done(
    stack: Stack, page: Page
) -> None:
    """The first answer is lost; its retry meets the API's own 503 (the producer given up, or
    the database still down): what became of the first is still not known. Before, the page
    then said "Nothing was terminated" (found by a review, stop 66)."""
    tenant = stack.tenant()
    kept, other = await stack.publish(
        [stack.session(tenant, "Retry Refused"), stack.session(tenant, "Second Lost")]
    )
    keys: list[str | None] = []

    async def lost_then_refused(route: Route) -> None:
        keys.append(await route.request.header_value("Idempotency-Key"))
        if len(keys) in (1, 2):  # each termination's first answer is lost
            await route.fetch()
            await route.abort("connectionreset")
        elif len(keys) == 3:
            detail = "the command bus (Kafka) is unavailable; nothing was changed, retry"
            await route.fulfill(status=503, json={"detail": detail})
        else:
            await route.continue_()

    await page.route(TERMINATIONS, lost_then_refused)
    await page.goto(stack.page_url(tenant.token))
    notice = page.locator("#unknown-banner")
    # each from its session's detail: no selection, which the list's refresh may or may not
    # have emptied by then (the first session is listed until the registry applies it)
    for told, name in enumerate(("Retry Refused", "Second Lost"), start=1):
        await page.get_by_role("button", name=name, exact=True).click()
        await page.get_by_role("dialog").get_by_role("button", name="Terminate…").click()
        confirm = page.get_by_role("dialog", name="Terminate 1 session?")
        await confirm.get_by_role("button", name="Terminate", exact=True).click()
        await expect(notice.locator("p")).to_have_count(told)
    # two notices: the second termination's does not take the first's place
    await expect(notice.locator("p")).to_have_count(2)
    first = notice.locator("p").nth(0)

    await first.get_by_role("button", name="Try again").click()  # refused: 503, no reason
    status = page.get_by_role("status")
    await expect(status).to_contain_text("The retry was not accepted")
    await expect(status).not_to_contain_text("Nothing was terminated")
    await expect(first).to_contain_text("still not known")
    await expect(notice.locator("p")).to_have_count(2)

    await first.get_by_role("button", name="Try again").click()
    await expect(status).to_have_text("1 session was ended.")
    await expect(notice.locator("p")).to_have_count(1)  # the second's question stays open
    await notice.get_by_role("button", name="Try again").click()
    await expect(status).to_have_text("1 session was ended.")
    await expect(notice).to_be_hidden()
    assert keys[0] == keys[2] == keys[3] and keys[1] == keys[4] and keys[0] != keys[1], keys
    async with stack.api(tenant) as api:
        audit = (await api.get("/api/v1/audit/terminations")).json()["items"]
        assert sorted(a["target"]["session_ids"][0] for a in audit) == sorted(
            [kept.session_id, other.session_id]
        )  # one command each


async def test_a_termination_whose_status_fails_for_a_while_is_followed_until_applied(
    stack: Stack, page: Page
) -> None:
    """A lost answer or a 5xx while following the status (a failover) is read again; before,
    the page said "Nothing was terminated" at the first one."""
    tenant = stack.tenant()
    (kept,) = await stack.publish([stack.session(tenant, "Flaky Status")])
    failed: list[int] = []

    async def failing(route: Route) -> None:
        if len(failed) < 2:
            failed.append(1)
            if failed == [1]:
                await route.abort("connectionreset")
            else:
                await route.fulfill(status=503, json={"detail": "the session database is down"})
            return
        await route.continue_()

    await page.route(STATUS, failing)
    await terminate_on_the_page(page, stack.page_url(tenant.token), kept.session_id)
    await expect(page.get_by_role("status")).to_have_text("1 session was ended.")
    assert len(failed) == 2


async def test_a_termination_accepted_whose_status_is_then_refused_says_it_was_accepted(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    (kept,) = await stack.publish([stack.session(tenant, "Unread Status")])

    async def forbidden(route: Route) -> None:  # the admin's grant withdrawn meanwhile
        await route.fulfill(status=403, json={"detail": "missing grant edit_user_sessions"})

    await page.route(STATUS, forbidden)
    await terminate_on_the_page(page, stack.page_url(tenant.token), kept.session_id)
    status = page.get_by_role("status")
    await expect(status).to_contain_text("The termination was accepted (command ")
    await expect(status).to_contain_text("could not be read (error 403)")
    await expect(status).not_to_contain_text("Nothing was")
    await expect(page.locator("#auth-banner")).to_contain_text("Access denied")
    async with stack.api(tenant) as api:
        audit = (await api.get("/api/v1/audit/terminations")).json()["items"]
        assert [a["target"] for a in audit] == [{"session_ids": [kept.session_id]}]
