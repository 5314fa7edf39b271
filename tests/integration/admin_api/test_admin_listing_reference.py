"""Filter, sort and cursor paging against a Python reference, on random data, both backends."""

from __future__ import annotations

import ipaddress
import random
from datetime import timedelta
from typing import Any

import httpx
import pytest
from admin_api_support import NOW, OTHER_TENANT, TENANT, insert, session_row
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.domain.listing import SORT_FIELDS
from session_contracts.addresses import pack_ip

NAMES = ["Ada Lovelace", "alan turing", "Grace Hopper", "Édith Piaf", "Zoë_100%", "Linus", "ada"]
DEVICES = ["Firefox on Linux", "Safari on iOS", "Chrome on Android", None, "Edge on Windows"]
TYPES = ["browser", "mobile", "desktop_app", "api_client"]


def random_rows(rng: random.Random, n: int) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        created = NOW - timedelta(minutes=rng.randint(1, 60 * 24 * 3))
        last = created + timedelta(minutes=rng.randint(0, 30))
        ip = (
            f"10.{rng.randint(0, 2)}.{rng.randint(0, 3)}.{rng.randint(0, 255)}"
            if rng.random() < 0.8
            else f"2001:db8::{rng.randint(0, 0xFFFF):x}"
        )
        state = rng.choice(["open"] * 8 + ["terminated", "expired"])
        rows.append(
            session_row(
                tenant_id=rng.choice([TENANT] * 4 + [OTHER_TENANT]),
                # handle-shaped (43 base64url characters, as v2 stores), the prefixes kept so
                # that the substring filters below select some and miss others
                session_id=f"{rng.choice(['S', 's', 'x-', 'Ab'])}{i:04d}".ljust(43, "_"),
                user_name=rng.choice(NAMES),
                session_type=rng.choice(TYPES),
                device=rng.choice(DEVICES),
                ip_address=ip,
                ip_packed=pack_ip(ip),
                created_at=created,
                # some share a last activity exactly: ties must break by session id
                last_activity_at=last if rng.random() < 0.7 else NOW - timedelta(hours=1),
                expires_at=NOW + timedelta(minutes=rng.randint(-120, 600)),
                state=state,
            )
        )
    return rows


def visible(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        r
        for r in rows
        if r["tenant_id"] == TENANT
        and r["state"] == "open"
        and r["session_type"] in ("browser", "mobile")
        and r["expires_at"] > NOW
    ]


def sort_key(field: str) -> Any:
    def key(r: dict[str, Any]) -> Any:
        if field == "ip_address":
            return pack_ip(r["ip_address"])
        if field == "device":
            return (r["device"] or "").encode()
        value = r[field]
        return value.encode() if isinstance(value, str) else value

    return key


def ordered(rows: list[dict[str, Any]], sort: str) -> list[str]:
    field = sort.removeprefix("-")
    key = sort_key(field)
    out = sorted(rows, key=lambda r: (key(r), r["session_id"].encode()), reverse=sort[0] == "-")
    return [r["session_id"] for r in out]


async def all_pages(client: httpx.AsyncClient, auth: dict[str, str], **params: Any) -> list[str]:
    seen: list[str] = []
    totals: set[tuple[int, bool]] = set()
    cursor = None
    for _ in range(200):
        query = {**params, **({"cursor": cursor} if cursor else {})}
        response = await client.get("/api/v1/sessions", params=query, headers=auth)
        assert response.status_code == 200, response.text
        body = response.json()
        seen += [i["session_id"] for i in body["items"]]
        totals.add((body["total"], body["total_exact"]))
        cursor = body["next_cursor"]
        if cursor is None:
            # later pages carry the first page's count: every page tells the same total,
            # exact or (a search stopped counting, PostgreSQL) a true lower bound
            ((total, exact),) = totals
            assert total == len(seen) if exact else params["limit"] < total <= len(seen), totals
            return seen
    raise AssertionError("paging never ended")


@pytest.fixture
async def data(engine: AsyncEngine) -> list[dict[str, Any]]:
    rows = random_rows(random.Random(20260301), 400)
    await insert(engine, rows)
    return visible(rows)


async def test_every_sort_both_ways_pages_exactly_the_reference(
    client: httpx.AsyncClient, auth: dict[str, str], data: list[dict[str, Any]]
) -> None:
    for field in SORT_FIELDS:
        for sort in (field, f"-{field}"):
            got = await all_pages(client, auth, sort=sort, limit=37)
            assert got == ordered(data, sort), sort


async def test_default_sort_is_latest_activity_first(
    client: httpx.AsyncClient, auth: dict[str, str], data: list[dict[str, Any]]
) -> None:
    response = await client.get("/api/v1/sessions", params={"limit": 500}, headers=auth)
    body = response.json()
    assert [i["session_id"] for i in body["items"]] == ordered(data, "-last_activity_at")
    assert body["total"] == len(data)
    assert body["next_cursor"] is None


def contains(value: str | None, needle: str) -> bool:
    return value is not None and needle.lower() in value.lower()


FILTERS: list[tuple[dict[str, Any], Any]] = [
    ({"q": "ADA"}, lambda r: contains(r["user_name"], "ada") or contains(r["session_id"], "ada")),
    ({"q": "mob"}, lambda r: r["session_type"] == "mobile"),
    ({"q": "ab0"}, lambda r: contains(r["session_id"], "ab0")),
    ({"q": "_100%"}, lambda r: contains(r["user_name"], "_100%")),
    ({"user_name": "grace"}, lambda r: contains(r["user_name"], "grace")),
    ({"session_id": "s00"}, lambda r: contains(r["session_id"], "s00")),
    ({"session_type": ["mobile"]}, lambda r: r["session_type"] == "mobile"),
    ({"session_type": ["mobile", "browser"]}, lambda r: True),
    ({"device": "ios"}, lambda r: contains(r["device"], "ios")),
    (
        {"ip_address": "10.1.0.0/16"},
        lambda r: ipaddress.ip_address(r["ip_address"]) in ipaddress.ip_network("10.1.0.0/16"),
    ),
    ({"ip_address": "2001:db8::/32"}, lambda r: ":" in r["ip_address"]),
    ({"ip_address": "::ffff:10.2.0.0/112"}, lambda r: r["ip_address"].startswith("10.2.")),
    (
        {"created_from": (NOW - timedelta(days=1)).isoformat()},
        lambda r: r["created_at"] >= NOW - timedelta(days=1),
    ),
    (
        {
            "last_activity_from": (NOW - timedelta(days=2)).isoformat(),
            "last_activity_to": (NOW - timedelta(hours=1)).isoformat(),
        },
        lambda r: NOW - timedelta(days=2) <= r["last_activity_at"] < NOW - timedelta(hours=1),
    ),
    (
        {"expires_to": (NOW + timedelta(hours=3)).isoformat().replace("+00:00", "+02:00")},
        lambda r: r["expires_at"] < NOW + timedelta(hours=1),
    ),
    ({"user_id": "u-3"}, lambda r: r["user_id"] == "u-3"),
    (
        {"q": "a", "session_type": ["browser"], "device": "on"},
        lambda r: (
            (contains(r["user_name"], "a") or contains(r["session_id"], "a"))
            and r["session_type"] == "browser"
            and contains(r["device"], "on")
        ),
    ),
]


@pytest.mark.parametrize(("params", "predicate"), FILTERS, ids=[str(f[0]) for f in FILTERS])
async def test_filters_match_the_reference_in_every_order(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    data: list[dict[str, Any]],
    params: dict[str, Any],
    predicate: Any,
) -> None:
    expected = [r for r in data if predicate(r)]
    assert expected, "the random data should exercise this filter"
    for sort in ("-last_activity_at", "user_name", "-ip_address", "device"):
        got = await all_pages(client, auth, sort=sort, limit=23, **params)
        assert got == ordered(expected, sort), (params, sort)
    response = await client.get("/api/v1/sessions", params=params, headers=auth)
    assert len(expected) >= response.json()["total"]
    exact = {**params, "count": "exact"}
    response = await client.get("/api/v1/sessions", params=exact, headers=auth)
    assert (response.json()["total"], response.json()["total_exact"]) == (len(expected), True)
