"""Detail, export, terminations, audit, settings and operations endpoints, on both backends."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import httpx
from admin_api_support import NOW, TENANT, RecordingBus, handle, insert, session_row
from sqlalchemy.ext.asyncio import AsyncEngine

from read_model.tables import applied_commands, session_history

GONE, TV, OLD, M, A, B, X = (handle(c) for c in ("gone", "tv", "old", "m", "a", "b", "x"))


async def test_detail_has_the_lifecycle_history_and_ended_sessions_stay_readable(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    ended = session_row(
        session_id=GONE,
        state="terminated",
        ended_at=NOW - timedelta(minutes=5),
        end_reason="admin",
        ended_by="admin-1",
    )
    await insert(engine, [ended, session_row(session_id=TV, session_type="tv_app")])
    async with engine.begin() as conn:
        await conn.execute(
            session_history.insert(),
            [
                {
                    "event_id": "e2",
                    "tenant_id": TENANT,
                    "session_id": GONE,
                    "type": "session.terminated",
                    "occurred_at": NOW - timedelta(minutes=5),
                    "detail": {"reason": "admin"},
                },
                {
                    "event_id": "e1",
                    "tenant_id": TENANT,
                    "session_id": GONE,
                    "type": "session.created",
                    "occurred_at": NOW - timedelta(hours=1),
                    "detail": {},
                },
            ],
        )
    body = (await client.get(f"/api/v1/sessions/{GONE}", headers=auth)).json()
    assert body["state"] == "terminated" and body["active"] is False
    assert body["end_reason"] == "admin" and body["ended_by"] == "admin-1"
    assert [h["type"] for h in body["history"]] == ["session.created", "session.terminated"]
    # recorded, never shown: types outside browser/mobile are not there for admins
    assert (await client.get(f"/api/v1/sessions/{TV}", headers=auth)).status_code == 404
    listed = (await client.get("/api/v1/sessions", headers=auth)).json()
    assert listed["total"] == 0


async def test_export_streams_every_match_in_order_with_formula_cells_defused(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    rows = [session_row(user_name=f"Name {i:04d}") for i in range(2500)]
    rows.append(session_row(user_name="=HYPERLINK(1)", session_type="mobile"))
    await insert(engine, rows)
    response = await client.get(
        "/api/v1/sessions/export.csv", params={"sort": "user_name"}, headers=auth
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/csv")
    lines = list(csv.DictReader(io.StringIO(response.text)))
    assert len(lines) == 2501
    assert lines[0]["user_name"] == "'=HYPERLINK(1)"
    assert {r["policy_outdated"] for r in lines} <= {"true", "false"}  # JSON spelling, not False
    assert [r["user_name"] for r in lines[1:]] == sorted(r["user_name"] for r in rows[:-1])
    only_mobile = await client.get(
        "/api/v1/sessions/export.csv", params={"session_type": "mobile"}, headers=auth
    )
    assert len(list(csv.DictReader(io.StringIO(only_mobile.text)))) == 1


async def test_termination_by_ids_then_by_filter_pending_then_applied(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus
) -> None:
    await insert(engine, [session_row(session_type="mobile") for _ in range(3)])
    by_ids = await client.post(
        "/api/v1/sessions/terminations",
        json={"session_ids": [A, B, A], "reason": "security"},
        headers=auth,
    )
    assert by_ids.status_code == 202, by_ids.text
    assert by_ids.json()["status"] == "accepted" and by_ids.json()["requested"] == 2
    by_filter = await client.post(
        "/api/v1/sessions/terminations",
        json={"filter": {"session_type": ["mobile"]}},
        headers=auth,
    )
    assert by_filter.json()["requested"] == 3
    first, second = bus.commands
    assert str(first.command_id) == by_ids.json()["command_id"]
    assert first.session_ids == [A, B, A] and first.reason == "security"
    assert second.filter is not None and second.filter.session_type == ["mobile"]
    assert second.requested_at == NOW and second.requested_by == "admin-1"

    status_url = f"/api/v1/sessions/terminations/{second.command_id}"
    pending = (await client.get(status_url, headers=auth)).json()
    assert pending["status"] == "pending" and pending["terminated"] == 0
    async with engine.begin() as conn:
        await conn.execute(
            applied_commands.insert().values(
                command_id=str(second.command_id),
                tenant_id=TENANT,
                requested_by="admin-1",
                requested_at=NOW,
                applied_at=NOW + timedelta(seconds=1),
                reason="admin",
                target={"filter": {"session_type": ["mobile"]}},
                terminated=3,
            )
        )
    applied = (await client.get(status_url, headers=auth)).json()
    assert applied["status"] == "applied" and applied["terminated"] == 3

    audit = (await client.get("/api/v1/audit/terminations", headers=auth)).json()
    assert [e["command_id"] for e in audit["items"]] == sorted(
        [str(first.command_id), str(second.command_id)], reverse=True
    )
    by_command = {e["command_id"]: e for e in audit["items"]}
    assert by_command[str(second.command_id)]["target"] == {"filter": {"session_type": ["mobile"]}}
    assert by_command[str(second.command_id)]["terminated"] == 3
    assert by_command[str(first.command_id)]["target"] == {"session_ids": [A, B, A]}


async def test_audit_filters_by_time_and_admin_and_pages(
    client: httpx.AsyncClient, token: Callable[..., str], bus: RecordingBus
) -> None:
    for admin in ("alice", "bob", "alice", "carol", "alice"):
        headers = {"Authorization": f"Bearer {token(sub=admin)}"}
        response = await client.post(
            "/api/v1/sessions/terminations", json={"session_ids": [X]}, headers=headers
        )
        assert response.status_code == 202
    headers = {"Authorization": f"Bearer {token()}"}
    seen: list[str] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"requested_by": "alice", "limit": 2}
        if cursor:
            params["cursor"] = cursor
        page = (
            await client.get("/api/v1/audit/terminations", params=params, headers=headers)
        ).json()
        seen += [e["command_id"] for e in page["items"]]
        assert all(e["requested_by"] == "alice" for e in page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            break
    alice = [str(c.command_id) for c in bus.commands if c.requested_by == "alice"]
    assert seen == sorted(alice, reverse=True)
    later = {"since": (NOW + timedelta(seconds=1)).isoformat()}
    empty = await client.get("/api/v1/audit/terminations", params=later, headers=headers)
    assert empty.json()["items"] == []
    window = {"since": NOW.isoformat(), "until": (NOW + timedelta(seconds=1)).isoformat()}
    everything = await client.get("/api/v1/audit/terminations", params=window, headers=headers)
    assert len(everything.json()["items"]) == 5


async def test_settings_default_change_publish_and_mark_outdated_sessions(
    engine: AsyncEngine, client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus
) -> None:
    defaults = (await client.get("/api/v1/settings/sessions", headers=auth)).json()["items"]
    assert defaults == [
        {
            "session_type": "browser",
            "max_session_seconds": 30 * 86400,
            "idle_timeout_seconds": 8 * 3600,
            "is_default": True,
            "updated_at": None,
            "updated_by": None,
        },
        {
            "session_type": "mobile",
            "max_session_seconds": 180 * 86400,
            "idle_timeout_seconds": 30 * 86400,
            "is_default": True,
            "updated_at": None,
            "updated_by": None,
        },
    ]
    await insert(
        engine,
        [
            session_row(session_id=OLD),
            session_row(
                session_id=M,
                session_type="mobile",
                max_session_seconds=180 * 86400,
                idle_timeout_seconds=30 * 86400,
            ),
        ],
    )
    listed = (await client.get("/api/v1/sessions", headers=auth)).json()["items"]
    assert not any(i["policy_outdated"] for i in listed)

    change = {"max_session_seconds": 86400, "idle_timeout_seconds": 3600}
    response = await client.put("/api/v1/settings/sessions/browser", json=change, headers=auth)
    assert response.status_code == 200, response.text
    browser = response.json()["items"][0]
    assert browser["max_session_seconds"] == 86400 and browser["is_default"] is False
    assert browser["updated_by"] == "admin-1"
    (record,) = bus.settings
    assert record.tenant_id == TENANT
    assert record.settings["browser"].max_session_seconds == 86400
    assert record.settings["mobile"].max_session_seconds == 180 * 86400

    outdated = (
        await client.get("/api/v1/sessions", params={"policy_outdated": "true"}, headers=auth)
    ).json()
    assert [i["session_id"] for i in outdated["items"]] == [OLD]
    assert outdated["items"][0]["policy_outdated"] is True
    current = await client.get(
        "/api/v1/sessions", params={"policy_outdated": "false"}, headers=auth
    )
    assert [i["session_id"] for i in current.json()["items"]] == [M]
    terminate = await client.post(
        "/api/v1/sessions/terminations", json={"filter": {"policy_outdated": True}}, headers=auth
    )
    assert terminate.json()["requested"] == 1
    assert bus.commands[-1].filter is not None and bus.commands[-1].filter.policy_outdated

    again = {"max_session_seconds": 86400 * 2, "idle_timeout_seconds": 3600}
    await client.put("/api/v1/settings/sessions/browser", json=again, headers=auth)
    assert bus.settings[-1].settings["browser"].max_session_seconds == 86400 * 2


async def test_a_settings_change_on_settings_read_before_another_is_412_and_changes_nothing(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    token: Callable[..., str],
    bus: RecordingBus,
) -> None:
    """Two admins who read the same settings could each save, and the later undid the earlier
    without knowing of it: an incident's tightening undone by a page loaded before it (a
    review, stop 71). A change sent with the `ETag` read as `If-Match` is made only on those."""
    other = {"Authorization": f"Bearer {token(sub='admin-2')}"}
    url = "/api/v1/settings/sessions/browser"
    read = await client.get("/api/v1/settings/sessions", headers=auth)
    seen = read.headers["etag"]
    assert seen.startswith('"') and seen.endswith('"')
    assert (await client.get("/api/v1/settings/sessions", headers=other)).headers["etag"] == seen
    tight = {"max_session_seconds": 3600, "idle_timeout_seconds": 600}
    tightened = await client.put(url, json=tight, headers={**other, "If-Match": seen})
    assert tightened.status_code == 200, tightened.text
    now = tightened.headers["etag"]
    assert now != seen

    lax = {"max_session_seconds": 30 * 86400, "idle_timeout_seconds": 8 * 3600}
    for stale in (seen, f"W/{now}", '"other", ' + seen):
        refused = await client.put(url, json=lax, headers={**auth, "If-Match": stale})
        assert refused.status_code == 412, (stale, refused.text)
        assert "changed since they were read" in refused.json()["detail"]
    # a comma inside a tag's quotes is the tag's: not a `*` of the list; a field that does not
    # parse (a `*` in a list, text outside quotes) matches nothing
    for odd in ('"a,*,b"', f"{now}, *", f"x{now}", f"W/ {now}"):
        refused = await client.put(url, json=lax, headers={**auth, "If-Match": odd})
        assert refused.status_code == 412, (odd, refused.text)
    # all its lines at most 1,024 characters: a long run of spaces held the worker seconds
    spaced = [*auth.items(), ("If-Match", '"x"'), ("If-Match", '"a"' + " " * 2000 + "x")]
    too_long = await client.put(url, json=lax, headers=spaced)
    assert too_long.status_code == 422 and "if-match" in too_long.text
    assert len(bus.settings) == 1  # nothing published for the refused ones
    items = (await client.get("/api/v1/settings/sessions", headers=auth)).json()["items"]
    browser = next(i for i in items if i["session_type"] == "browser")
    assert (browser["max_session_seconds"], browser["updated_by"]) == (3600, "admin-2")

    # on the settings as they are now, or on whatever they are: made
    for matching in (f'"other", {now}', "*"):
        made = await client.put(url, json=tight, headers={**auth, "If-Match": matching})
        assert made.status_code == 200, (matching, made.text)
        now = made.headers["etag"]
    # If-Match on two lines is one list (RFC 9110 5.3): the second line's tag counts
    lines = [*auth.items(), ("If-Match", '"other"'), ("If-Match", now)]
    made = await client.put(url, json=tight, headers=lines)
    assert made.status_code == 200, made.text
    assert (await client.put(url, json=lax, headers=auth)).status_code == 200  # no If-Match
    assert len(bus.settings) == 5


async def test_settings_refuse_bad_values_naming_the_field(
    client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus
) -> None:
    cases = [
        ("browser", {"max_session_seconds": 600, "idle_timeout_seconds": 3600}, "idle"),
        ("browser", {"max_session_seconds": 0, "idle_timeout_seconds": 60}, "max_session_seconds"),
        ("browser", {"max_session_seconds": 600}, "idle_timeout_seconds"),
        ("tv_app", {"max_session_seconds": 600, "idle_timeout_seconds": 60}, "session_type"),
        ("browser", {"max_session_seconds": 600, "idle_timeout_seconds": 60, "x": 1}, "x"),
    ]
    for kind, body, field in cases:
        response = await client.put(f"/api/v1/settings/sessions/{kind}", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        assert field in response.text
    assert bus.settings == []


async def test_kafka_unavailable_is_503_and_nothing_is_recorded(
    client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus
) -> None:
    from admin_api.adapters.bus import BusUnavailable

    async def refuse(*_: object, **__: object) -> None:  # stands in for either method
        raise BusUnavailable("broker down")

    bus.terminate = refuse  # type: ignore[method-assign]
    bus.settings_changed = refuse  # type: ignore[method-assign]
    response = await client.post(
        "/api/v1/sessions/terminations", json={"session_ids": [A]}, headers=auth
    )
    assert response.status_code == 503 and response.headers["Retry-After"]
    assert (await client.get("/api/v1/audit/terminations", headers=auth)).json()["items"] == []
    change = {"max_session_seconds": 86400, "idle_timeout_seconds": 3600}
    put = await client.put("/api/v1/settings/sessions/mobile", json=change, headers=auth)
    assert put.status_code == 503
    items = (await client.get("/api/v1/settings/sessions", headers=auth)).json()["items"]
    assert all(i["is_default"] for i in items)


async def test_health_readiness_and_metrics(
    client: httpx.AsyncClient, auth: dict[str, str], bus: RecordingBus
) -> None:
    assert (await client.get("/healthz")).json() == {"status": "ok"}
    ready = await client.get("/readyz")
    assert ready.status_code == 200 and ready.json()["checks"] == {
        "database": "ok",
        "schema": "ok",
        "kafka": "ok",
    }
    bus.ready = False
    degraded = await client.get("/readyz")  # reads still served: 200, writes refused
    assert degraded.status_code == 200 and degraded.json()["status"] == "degraded"
    assert degraded.json()["checks"]["kafka"] == "connecting"
    await client.get("/api/v1/sessions", headers=auth)
    metrics = (await client.get("/metrics")).text
    assert (
        'admin_api_requests_total{method="GET",route="/api/v1/sessions",status="200"} 1.0'
        in metrics
    )
    assert "admin_api_request_seconds_bucket" in metrics
    assert "process_cpu_seconds_total" in metrics  # one process: its process and GC metrics
    assert "python_gc_collections_total" in metrics
    assert (await client.get("/openapi.json")).status_code == 200  # development
    assert (await client.get("/admin")).status_code == 200
