"""Markup in a user's name, device or user agent is shown as text: nothing of it runs or renders.

The page fixture fails the test on any script error or dialog (`alert`); the test also looks for
the elements the markup would have made, and for the flag its scripts would have set.
"""

from __future__ import annotations

import re

import pytest
from admin_stack import Stack, Tenant
from playwright.async_api import Locator, Page, expect

from admin_api.auth import issue_dev_token

pytestmark = [pytest.mark.browser, pytest.mark.kafka]

NAME = '<img src=x onerror="window.__xss = 1; alert(1)">'
DEVICE = "<script>window.__xss = 2; alert(2)</script>"
AGENT = '<svg onload="window.__xss = 3; alert(3)"></svg><b>bold</b> \' OR 1=1 --'


async def test_markup_in_session_fields_renders_as_text_and_never_runs(
    stack: Stack, page: Page
) -> None:
    tenant = stack.tenant()
    event = stack.session(tenant, NAME, device=DEVICE).model_copy(update={"user_agent": AGENT})
    await stack.publish([event])

    await page.goto(stack.page_url(tenant.token))
    row = page.locator("#rows tr").first
    await expect(row).to_contain_text(NAME)
    await expect(row).to_contain_text(DEVICE)
    await expect(row).not_to_contain_text("Hidden characters")  # markup hides nothing
    await row.locator(".name-cell .link-button").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await expect(dialog.locator("dl.detail-list")).to_contain_text(AGENT)
    await expect(dialog.locator("dl.detail-list")).to_contain_text(DEVICE)
    await expect(dialog).not_to_contain_text("Hidden characters")  # markup hides nothing

    made = await page.evaluate(
        """() => ({
            flag: window.__xss ?? null,
            images: document.querySelectorAll('img[src="x"]').length,
            svgs: document.querySelectorAll("svg[onload]").length,
            bold: [...document.querySelectorAll("b")].filter(b => b.textContent === "bold").length,
            scripts: [...document.scripts].filter(s => s.textContent.includes("__xss")).length,
        })"""
    )
    assert made == {"flag": None, "images": 0, "svgs": 0, "bold": 0, "scripts": 0}


RLO = "\u202e"  # RIGHT-TO-LEFT OVERRIDE: what follows it is laid out right to left

GLYPH_LEFTS = """(node) => {
    // the left edge of each visible character of the element's text, in text order
    const out = [];
    const walker = document.createTreeWalker(node, NodeFilter.SHOW_TEXT);
    for (let text = walker.nextNode(); text; text = walker.nextNode()) {
        for (let i = 0; i < text.data.length; i++) {
            const range = document.createRange();
            range.setStart(text, i);
            range.setEnd(text, i + 1);
            const box = range.getBoundingClientRect();
            if (box.width > 0) out.push([text.data[i], box.left]);
        }
    }
    return out;
}"""


@pytest.mark.parametrize(
    "user_id",
    [
        pytest.param(f"u-{RLO}evil", id="override"),
        # the page wraps a value in FIRST STRONG ISOLATE ... POP DIRECTIONAL ISOLATE: a U+2069 of
        # the value's own closed that isolate early, and the override after it ran to the end of
        # the sentence (a review, stop 71)
        pytest.param(f"u-\u2069{RLO}evil", id="pop-isolate-first"),
        # a paragraph separator ends every isolate and embedding
        pytest.param(f"u-\u2029{RLO}evil", id="paragraph-separator"),
        pytest.param(f"u-\u0085{RLO}evil", id="next-line"),
        # an isolate the value opens and never closes takes the page's U+2069 for its own,
        # leaving the page's isolate open, right to left from the value's first letter
        pytest.param(f"\u05d0\u2067{RLO}evil", id="unclosed-isolate"),
    ],
)
async def test_a_direction_override_in_a_value_reorders_no_word_around_it(
    stack: Stack, page: Page, user_id: str
) -> None:
    # the contract lets a user id or a name hold U+202E; dropped into a sentence as it is, it
    # lays the rest of the sentence out backwards: "Sign out user u-evil ?erehwyreve"
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, f"Sam {RLO}Lee", user_id=user_id)])
    await page.goto(stack.page_url(tenant.token))
    await page.locator("#rows tr").first.locator("button.user-button").click()
    view = page.get_by_role("region", name="One user's sessions")
    await expect(view).to_contain_text("All sessions of user")
    await expect(view).to_contain_text("Lee")  # the names, from the rows the list has
    line: list[tuple[str, float]] = await view.locator(".user-view-text").evaluate(GLYPH_LEFTS)
    # "(Sam Lee)" follows the user id: its closing parenthesis is still the line's last glyph
    assert line[-1][0] == ")" and line[-1][1] == max(left for _, left in line)

    await view.get_by_role("button", name="Sign out everywhere").click()
    title = page.locator("#modal-title")
    await expect(title).to_contain_text("everywhere?")
    glyphs: list[tuple[str, float]] = await title.evaluate(GLYPH_LEFTS)
    # the question mark ends the title on the right, as in any other title, and the word
    # before it reads left to right
    assert glyphs[-1][0] == "?" and glyphs[-1][1] == max(left for _, left in glyphs)
    everywhere = glyphs[-len("everywhere?") :]
    assert "".join(char for char, _ in everywhere) == "everywhere?"
    assert [left for _, left in everywhere] == sorted(left for _, left in everywhere)


async def test_the_list_and_detail_say_when_a_name_or_user_id_holds_characters_not_shown(
    stack: Stack, page: Page
) -> None:
    # "Sam Lee" with an override before "Lee" shows as "Sam eeL", and a zero-width space makes
    # "admin" another user id that looks the same: the detail names what is not shown
    tenant = stack.tenant()
    await stack.publish([stack.session(tenant, f"Sam {RLO}Lee", user_id="adm\u200bin")])
    await page.goto(stack.page_url(tenant.token))
    row = page.locator("#rows tr").first
    await expect(row.locator(".name-cell .badge")).to_have_text("Hidden characters")
    await row.locator(".name-cell .link-button").click()
    details = page.get_by_role("dialog").locator("dl.detail-list")
    await expect(details).to_contain_text("The name holds characters that are not shown (U+202E)")
    await expect(details).to_contain_text(
        "The user ID holds characters that are not shown (U+200B)"
    )


async def test_controls_and_fillers_are_hidden_characters_and_every_confirmation_says_so(
    stack: Stack, page: Page
) -> None:
    # C1 controls (the contract refuses C0 and DEL only) and the Hangul filler are drawn as
    # nothing by some browsers: "alice" plus one of them is another user id that looks the same.
    # The list flags them, and so do the dialogs that end them (a review, stop 71).
    tenant = stack.tenant()
    await stack.publish(
        [
            stack.session(tenant, "Alice Next", user_id="alice\u0085"),
            stack.session(tenant, "Alice Csi", user_id="alice\u009b"),
            stack.session(tenant, "Alice\u3164Filler", user_id="alice-f"),
            stack.session(tenant, "Alice Plain", user_id="alice"),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    rows = page.locator("#rows tr")
    await expect(rows).to_have_count(4)
    names = ("Alice Next", "Alice Csi", "Filler", "Alice Plain")
    assert await badges_by_name(rows, names) == {
        "Alice Next": ["Hidden characters"],
        "Alice Csi": ["Hidden characters"],
        "Filler": ["Hidden characters"],
        "Alice Plain": [],
    }
    await detail_says(
        page,
        rows,
        "Alice Csi",
        "The user ID holds characters that are not shown (U+009B)",
        not_="Mixed scripts",
    )

    # the selected sessions' dialog flags the name beside its id
    await page.get_by_role("checkbox", name=re.compile("^Select Alice Next")).check()
    await page.get_by_role("checkbox", name=re.compile("^Select Alice Plain")).check()
    await page.get_by_role("button", name="Terminate", exact=True).click()
    dialog = page.get_by_role("dialog")
    flagged = dialog.locator(".confirm-table tbody tr")
    await expect(flagged.filter(has_text="Alice Next").locator(".badge")).to_have_text(
        "Hidden characters"
    )
    await expect(flagged.filter(has_text="Alice Plain").locator(".badge")).to_have_count(0)
    await dialog.get_by_role("button", name="Cancel").click()

    # "Sign out everywhere" names the user id, and says what it holds that is not shown
    await rows.filter(has_text="Alice Next").locator("button.user-button").click()
    view = page.get_by_role("region", name="One user's sessions")
    await view.get_by_role("button", name="Sign out everywhere").click()
    dialog = page.get_by_role("dialog")
    await expect(dialog.locator("p.warning")).to_have_text(
        "The user ID holds characters that are not shown (U+0085): it may not be what it looks"
        " like."
    )
    await expect(dialog).to_contain_text("[U+0085]")  # the control, shown where it is


async def test_the_audit_flags_an_admin_user_id_that_imitates_another(
    stack: Stack, page: Page
) -> None:
    # the audit's Admin column is the token's `sub`: "\u0430dmin-1" (a Cyrillic U+0430) reads as
    # "admin-1", the admin whose token the page holds (a review, stop 71)
    tenant = stack.tenant()
    (ended,) = await stack.publish([stack.session(tenant, "Mallory Suspect")])
    imitator = issue_dev_token(stack.settings, "\u0430dmin-1", tenant.tenant_id)
    async with stack.api(Tenant(tenant.tenant_id, imitator)) as api:
        answer = await api.post(
            "/api/v1/sessions/terminations", json={"session_ids": [ended.session_id]}
        )
        assert answer.status_code == 202, answer.text
    async with stack.api(tenant) as api:
        # a filter whose user name closes the isolate of its condition, then overrides: the
        # conditions after it read backwards in the audit's "What"
        hostile = {"user_name": f"u-\u2069{RLO}evil", "device": "Pixel"}
        answer = await api.post("/api/v1/sessions/terminations", json={"filter": hostile})
        assert answer.status_code == 202, answer.text
    await page.goto(stack.page_url(tenant.token))
    await page.get_by_role("link", name="Audit log").click()
    entries = page.locator("#audit-body tbody tr")
    await expect(entries).to_have_count(2)
    admins = entries.locator("td[data-label='Admin']")
    badged = {
        (await admin.locator(".mono").inner_text()): await admin.locator(".badge").all_inner_texts()
        for admin in await admins.all()
    }
    assert badged == {"\u0430dmin-1": ["Mixed scripts"], "admin-1": []}
    what = entries.filter(has_text="Sessions matching").locator("td[data-label='What']")
    await expect(what).to_contain_text("user_name=u-[U+2069][U+202E]evil")
    glyphs: list[tuple[str, float]] = await what.evaluate(GLYPH_LEFTS)
    # the last condition still ends the cell on the right, read left to right
    tail = glyphs[-len("device=Pixel") :]
    assert "".join(char for char, _ in tail) == "device=Pixel"
    assert [left for _, left in tail] == sorted(left for _, left in tail)
    assert tail[-1][1] == max(left for _, left in glyphs)


async def badges_by_name(rows: Locator, names: tuple[str, ...]) -> dict[str, list[str]]:
    """The badges beside each row's name, by a text of the row."""
    return {
        name: await rows.filter(has_text=name).locator(".name-cell .badge").all_inner_texts()
        for name in names
    }


async def detail_says(page: Page, rows: Locator, name: str, *says: str, not_: str) -> None:
    """The detail of the row holding `name` says each of `says`, and not `not_`; closed again."""
    await rows.filter(has_text=name).locator(".name-cell .link-button").click()
    details = page.get_by_role("dialog").locator("dl.detail-list")
    for text in says:
        await expect(details).to_contain_text(text)
    await expect(details).not_to_contain_text(not_)
    await page.keyboard.press("Escape")
    await expect(page.get_by_role("dialog")).to_have_count(0)


async def test_the_list_and_detail_say_when_a_word_mixes_look_alike_alphabets(
    stack: Stack, page: Page
) -> None:
    # a Cyrillic U+0430 for the "a" of "Paul" and "admin" makes words that look Latin; a name
    # whose words are each of one alphabet, or whose other alphabet has no look-alikes, is
    # not flagged
    tenant = stack.tenant()
    await stack.publish(
        [
            stack.session(tenant, "P\u0430ul Smith", user_id="paul"),
            stack.session(tenant, "Ada Lovelace", user_id="\u0430dmin"),
            stack.session(tenant, "Иван Petrov", user_id="ivan"),
            stack.session(tenant, "Αλέξανδρος Παπαδόπουλος", user_id="alex"),
            stack.session(tenant, "Tokyo東京 Office", user_id="tokyo"),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    rows = page.locator("#rows tr")
    await expect(rows).to_have_count(5)
    names = ("Smith", "Lovelace", "Petrov", "Παπαδόπουλος", "Office")
    assert await badges_by_name(rows, names) == {
        "Smith": ["Mixed scripts"],
        "Lovelace": ["Mixed scripts"],
        "Petrov": [],
        "Παπαδόπουλος": [],
        "Office": [],
    }
    for name, says in (
        ("Smith", "The name mixes Latin and Cyrillic letters in one word (U+0430 Cyrillic)"),
        ("Lovelace", "The user ID mixes Latin and Cyrillic letters in one word (U+0430 Cyrillic)"),
    ):
        await detail_says(page, rows, name, says, not_="Hidden characters")


async def test_the_list_and_detail_say_when_a_word_in_another_alphabet_reads_as_latin(
    stack: Stack, page: Page
) -> None:
    # "\u0421\u043e\u0441\u043e" and "\u0455\u0441\u043e\u0440\u0435" are wholly Cyrillic, and
    # drawn exactly as "Coco" and "scope": no letter of another alphabet to notice (UTS #39's
    # whole-script confusables). A Cyrillic name with letters that look like no Latin one, and a
    # Russian one-letter word, are not flagged.
    coco, scope = "\u0421\u043e\u0441\u043e", "\u0455\u0441\u043e\u0440\u0435"
    tenant = stack.tenant()
    await stack.publish(
        [
            stack.session(tenant, f"{coco} Chanel", user_id="coco"),
            stack.session(tenant, "Ada Lovelace", user_id=scope),
            stack.session(tenant, "\u0418\u0432\u0430\u043d \u0441 Petrov", user_id="ivan"),
        ]
    )
    await page.goto(stack.page_url(tenant.token))
    rows = page.locator("#rows tr")
    await expect(rows).to_have_count(3)
    assert await badges_by_name(rows, ("Chanel", "Lovelace", "Petrov")) == {
        "Chanel": ["Looks Latin"],
        "Lovelace": ["Looks Latin"],
        "Petrov": [],
    }
    # the word isolated (it is not Latin), its reading as it is
    for name, label, word, reading in (
        ("Chanel", "The name", coco, "Coco"),
        ("Lovelace", "The user ID", scope, "scope"),
    ):
        await detail_says(
            page,
            rows,
            name,
            f"{label} has a word in Cyrillic letters that all look Latin:",
            f"\u2068{word}\u2069 reads as {reading};",
            not_="Mixed scripts",
        )
