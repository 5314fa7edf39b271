"""Hostile HTTP input to the admin API, on both backends: oversized requests are refused with a
JSON 413/414, and SQL-, LIKE- and script-like text in every search field returns exactly the
matching sessions (never an error, never a 500).

Contract v2: sessions are named by handles (base64url), so the `session_id` filter takes a
piece of a handle; other text there is refused with a 422 naming the field (tested), while the
hostile credentials the rows were made from never reach the read model at all."""

from __future__ import annotations

import re
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from asgi_served import served
from migrated import MigratedCopies

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration" / "admin_api"))

from admin_api_support import (
    NOW,
    TENANT,
    RecordingBus,
    handle,
    insert,
    make_settings,
    session_row,
)
from hostile_support import HOSTILE_STRINGS

from admin_api.app import create_app
from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from read_model.database import make_engine

CREDENTIALS = [
    ("Alice", "plain-1", "Firefox on Linux"),
    ("alice smith", "plain-2", "Chrome on macOS"),
    ("' OR 1=1 --", "s-'OR1=1--", "' OR 1=1 --"),
    ('"; DROP TABLE sessions; --', 's-";DROP', '"; DROP TABLE sessions; --'),
    ("<script>alert(1)</script>", "s-<script>", "<script>alert(1)</script>"),
    ("<img src=x onerror=alert(1)>", "s-<img>", "<img src=x onerror=alert(1)>"),
    ("100% real", "s-100%", "50%"),
    ("under_score", "s-a_b", "x_y"),
    ("back\\slash", "s-a\\b", "c:\\dev"),
    ("Ünïcødé 名前 🙂", "s-unicode", "Ünïcødé 名前 🙂"),
    ("\u202eevil", "s-rtl", "\u202eevil"),
]
"""(user name, credential, device): the credentials are hostile text, as a v1 id was."""
ROWS = [(user_name, handle(credential), device) for user_name, credential, device in CREDENTIALS]
"""(user name, session id, device) as the read model holds them: v2 ids are handles."""
HANDLE_PIECE = re.compile(r"[A-Za-z0-9_-]{1,43}")
"""What the `session_id` filter accepts (base64url, as handles are written)."""
FIELDS = ("q", "user_name", "session_id", "device")
NEEDLES = [
    *HOSTILE_STRINGS,
    "%%",
    "__",
    "\\%",
    "' OR '1'='1",
    "1; SELECT pg_sleep(5)",
    "*",
    "ALICE",
    "名前",
    "a\tb",
    ROWS[0][1][5:12],  # a piece of a handle: the session_id filter finds its session
    ROWS[1][1][20:].upper(),
    "-",
]


@pytest.fixture
async def client(db_url: str, migrated: MigratedCopies) -> AsyncIterator[httpx.AsyncClient]:
    """The app over ASGI on a migrated read model holding ROWS, at the fixed time NOW."""
    await migrated.migrate(db_url)
    engine = make_engine(db_url)
    await insert(
        engine,
        [session_row(user_name=u, session_id=s, device=d) for u, s, d in ROWS],
    )
    await engine.dispose()
    app = create_app(make_settings(db_url), bus=RecordingBus(), clock=lambda: NOW)
    async with served(app) as c:
        token = issue_dev_token(make_settings(db_url), "admin-1", TENANT, (EDIT_USER_SESSIONS,))
        c.headers["Authorization"] = f"Bearer {token}"
        yield c


def _matches(field: str, needle: str) -> set[str]:
    def contains(value: str) -> bool:
        return needle.lower() in value.lower()

    found = set()
    for user_name, session_id, device in ROWS:
        hit = {
            "q": contains(user_name) or contains(session_id) or needle.lower() in "browser",
            "user_name": contains(user_name),
            "session_id": contains(session_id),
            "device": contains(device),
        }[field]
        if hit:
            found.add(session_id)
    return found


def _is_control(text: str) -> bool:
    return any(c < " " or c == "\x7f" for c in text)


def _refused_cleanly(response: httpx.Response, field: str) -> bool:
    """A 422 naming the field (control characters are refused, not searched)."""
    if response.status_code != 422:
        return False
    return any(field in error["loc"] for error in response.json()["detail"])


async def test_hostile_text_in_every_search_field_returns_exactly_the_matches(
    client: httpx.AsyncClient,
) -> None:
    checked = refused_as_no_handle = 0
    for field in FIELDS:
        for needle in NEEDLES:
            response = await client.get("/api/v1/sessions", params={field: needle, "limit": 500})
            if _is_control(needle):  # refused: PostgreSQL cannot store NUL, nothing matches
                assert _refused_cleanly(response, field), (field, needle, response.text)
                continue
            if field == "session_id" and not HANDLE_PIECE.fullmatch(needle):  # v2: not a handle's
                assert _refused_cleanly(response, field), (field, needle, response.text)
                refused_as_no_handle += 1
                continue
            assert response.status_code == 200, (field, needle, response.text)
            page = response.json()
            found = {item["session_id"] for item in page["items"]}
            assert found == _matches(field, needle), (field, needle)
            assert page["total"] == len(found), (field, needle)
            checked += 1
    pieces = [n for n in NEEDLES if HANDLE_PIECE.fullmatch(n)]
    assert refused_as_no_handle == len([n for n in NEEDLES if not _is_control(n)]) - len(pieces)
    assert checked == (len(FIELDS) - 1) * len([n for n in NEEDLES if not _is_control(n)]) + len(
        pieces
    )
    assert len(pieces) >= 5 and any(_matches("session_id", p) for p in pieces)
    # the table and its rows are all still there
    everything = (await client.get("/api/v1/sessions", params={"limit": 500})).json()
    assert everything["total"] == len(ROWS)


async def test_hostile_text_in_export_and_termination_filters(
    client: httpx.AsyncClient,
) -> None:
    for needle in NEEDLES:
        if _is_control(needle):
            continue
        expected = _matches("q", needle)
        export = await client.get("/api/v1/sessions/export.csv", params={"q": needle})
        assert export.status_code == 200, (needle, export.text)
        assert len(export.text.strip().splitlines()) - 1 == len(expected), needle
        accepted = await client.post(
            "/api/v1/sessions/terminations", json={"filter": {"q": needle, "device": needle}}
        )
        assert accepted.status_code == 202, (needle, accepted.text)
        both = _matches("q", needle) & _matches("device", needle)
        assert accepted.json()["requested"] == len(both), needle
    for field in ("sort", "cursor", "ip_address", "session_type", "created_from", "limit"):
        for needle in NEEDLES:
            response = await client.get("/api/v1/sessions", params={field: needle})
            assert response.status_code == 422, (field, needle, response.text)
            assert any(field in error["loc"] for error in response.json()["detail"])
    for needle in ("' OR 1=1 --", "..%2F..%2Fetc", "%00", "<script>"):
        response = await client.get(f"/api/v1/sessions/{needle}")
        assert response.status_code in (404, 422), (needle, response.text)


def _json_error(response: httpx.Response, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    detail: str = response.json()["detail"]
    return detail


async def test_oversized_requests_are_refused_with_a_json_error(
    client: httpx.AsyncClient,
) -> None:
    big = {"session_ids": [handle(f"s-{n}") for n in range(30_000)]}  # about 1.4 MB
    detail = _json_error(await client.post("/api/v1/sessions/terminations", json=big), 413)
    assert "byte limit" in detail

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: cut off while reading
        yield b'{"session_ids": ["'
        for _ in range(64):
            yield b"x" * 32_768
        yield b'"]}'

    chunked = await client.post(
        "/api/v1/sessions/terminations",
        content=chunks(),
        headers={"content-type": "application/json"},
    )
    assert "byte limit" in _json_error(chunked, 413)
    lying = await client.put(
        "/api/v1/settings/sessions/browser",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(10**12)},
    )
    assert lying.status_code in (400, 413), lying.text

    long_query = await client.get("/api/v1/sessions", params={"q": "x" * 60_000})
    assert "query string" in _json_error(long_query, 414)
    many_params = await client.get("/api/v1/sessions?" + "&".join(["session_type=browser"] * 2000))
    assert "query string" in _json_error(many_params, 414)

    # at the limits of the contract, still answered normally
    most = {"session_ids": [handle(f"s-{n}") for n in range(1000)]}
    assert (await client.post("/api/v1/sessions/terminations", json=most)).status_code == 202
    too_long = await client.get("/api/v1/sessions", params={"q": "x" * 257})
    assert too_long.status_code == 422
    assert any("q" in e["loc"] for e in too_long.json()["detail"])
