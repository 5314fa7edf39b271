"""Every time the API reads, in a query or a body, is an RFC 3339 string with an offset.

Numbers were read as Unix times (`?last_activity_to=0.5` answered 200); now they, bare dates
and times without offset are 422 naming the field, with the reason.
"""

from __future__ import annotations

import httpx
import pytest
from admin_api_support import RecordingBus

from admin_api.app import create_app
from admin_api.settings import AdminApiSettings

NOT_TIMES = ["0", "0.5", "-1", "1700000000", "2026-11-30", "2026-11-30T00:00:00", "1.7e9"]
LIST_TIME_PARAMS = [
    "created_from",
    "created_to",
    "last_activity_from",
    "last_activity_to",
    "expires_from",
    "expires_to",
]


def _named(response: httpx.Response, *where: str | int) -> bool:
    return any(tuple(e["loc"][: len(where)]) == where for e in response.json()["detail"])


@pytest.mark.parametrize("value", NOT_TIMES)
async def test_list_and_export_time_parameters_take_rfc3339_only(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> None:
    for path in ("/api/v1/sessions", "/api/v1/sessions/export.csv"):
        for name in LIST_TIME_PARAMS:
            response = await client.get(path, params={name: value}, headers=auth)
            assert response.status_code == 422, (path, name, value, response.text)
            assert _named(response, "query", name), response.text
            assert "RFC 3339" in response.text


@pytest.mark.parametrize("value", NOT_TIMES)
async def test_audit_time_parameters_take_rfc3339_only(
    client: httpx.AsyncClient, auth: dict[str, str], value: str
) -> None:
    for name in ("since", "until"):
        response = await client.get(
            "/api/v1/audit/terminations", params={name: value}, headers=auth
        )
        assert response.status_code == 422, (name, value, response.text)
        assert _named(response, "query", name), response.text


@pytest.mark.parametrize("value", [0, 0.5, -1, 1700000000, "1700000000", "2026-11-30"])
async def test_a_termination_filter_takes_rfc3339_times_only(
    client: httpx.AsyncClient, auth: dict[str, str], value: object
) -> None:
    body = {"filter": {"last_activity_to": value}}
    response = await client.post("/api/v1/sessions/terminations", json=body, headers=auth)
    assert response.status_code == 422, response.text
    assert _named(response, "body", "filter", "last_activity_to"), response.text


async def test_rfc3339_with_an_offset_is_accepted_everywhere(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    times = {"created_from": "2026-01-01T00:00:00Z", "expires_to": "2027-01-01T01:00:00+01:00"}
    listed = await client.get("/api/v1/sessions", params=times, headers=auth)
    assert listed.status_code == 200, listed.text
    audit = await client.get(
        "/api/v1/audit/terminations",
        params={"since": "2026-01-01T00:00:00-05:00", "until": "2027-01-01T00:00:00z"},
        headers=auth,
    )
    assert audit.status_code == 200, audit.text
    terminated = await client.post(
        "/api/v1/sessions/terminations", json={"filter": times}, headers=auth
    )
    assert terminated.status_code == 202, terminated.text


def test_the_openapi_document_states_the_rule(settings: AdminApiSettings) -> None:
    spec = create_app(settings, bus=RecordingBus()).openapi()
    listed = {p["name"]: p for p in spec["paths"]["/api/v1/sessions"]["get"]["parameters"]}
    for name in LIST_TIME_PARAMS:
        schema = listed[name]["schema"]["anyOf"][0]
        assert schema["format"] == "date-time" and "pattern" in schema, (name, schema)
