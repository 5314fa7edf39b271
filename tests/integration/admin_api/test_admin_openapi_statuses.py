"""The OpenAPI document declares every status each operation answers, with the body it sends.

It declared no 401 or 403 although every protected operation answers them; nor 413, 414,
400 or 503. Each declared error status is produced here for every operation and its body
checked against the declared schema (`{"detail": "..."}`; 422s are FastAPI's validation body).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest
from admin_api_support import RecordingBus, handle, make_settings

from admin_api.app import create_app
from admin_api.auth import issue_dev_token
from admin_api.settings import AdminApiSettings
from asgi_served import served

PROTECTED = {401, 403, 413, 414, 503}
EXPECTED: dict[tuple[str, str], set[int]] = {
    ("get", "/api/v1/sessions"): {200, 422, 429} | PROTECTED,
    ("get", "/api/v1/sessions/export.csv"): {200, 422, 429} | PROTECTED,
    ("get", "/api/v1/sessions/{session_id}"): {200, 404, 422} | PROTECTED,
    ("post", "/api/v1/sessions/terminations"): {202, 400, 422, 429} | PROTECTED,
    ("get", "/api/v1/sessions/terminations/{command_id}"): {200, 404, 422} | PROTECTED,
    ("get", "/api/v1/audit/terminations"): {200, 422} | PROTECTED,
    ("get", "/api/v1/settings/sessions"): {200} | PROTECTED,
    ("put", "/api/v1/settings/sessions/{session_type}"): {200, 400, 412, 422} | PROTECTED,
    ("get", "/healthz"): {200, 413, 414},
    ("get", "/readyz"): {200, 413, 414, 503},
    ("get", "/metrics"): {200, 413, 414},
}
UNKNOWN = "00000000-0000-4000-8000-000000000000"
CALLS: dict[tuple[str, str], tuple[str, str, Any]] = {
    ("get", "/api/v1/sessions"): ("GET", "/api/v1/sessions", None),
    ("get", "/api/v1/sessions/export.csv"): ("GET", "/api/v1/sessions/export.csv", None),
    ("get", "/api/v1/sessions/{session_id}"): ("GET", f"/api/v1/sessions/{handle('nope')}", None),
    ("post", "/api/v1/sessions/terminations"): (
        "POST",
        "/api/v1/sessions/terminations",
        {"session_ids": [handle("a")]},
    ),
    ("get", "/api/v1/sessions/terminations/{command_id}"): (
        "GET",
        f"/api/v1/sessions/terminations/{UNKNOWN}",
        None,
    ),
    ("get", "/api/v1/audit/terminations"): ("GET", "/api/v1/audit/terminations", None),
    ("get", "/api/v1/settings/sessions"): ("GET", "/api/v1/settings/sessions", None),
    ("put", "/api/v1/settings/sessions/{session_type}"): (
        "PUT",
        "/api/v1/settings/sessions/browser",
        {"max_session_seconds": 3600, "idle_timeout_seconds": 600},
    ),
}
NO_DATABASE = "postgresql+asyncpg://sessions:sessions@127.0.0.1:1/nothing-listens-here"


def _spec(settings: AdminApiSettings) -> dict[str, Any]:
    spec: dict[str, Any] = create_app(settings, bus=RecordingBus()).openapi()
    return spec


def test_every_operation_declares_the_statuses_it_answers(settings: AdminApiSettings) -> None:
    spec = _spec(settings)
    declared = {
        (method, path): {int(code) for code in operation["responses"]}
        for path, operations in spec["paths"].items()
        for method, operation in operations.items()
    }
    assert declared == EXPECTED
    error_body = spec["components"]["schemas"]["ErrorBody"]
    assert error_body["required"] == ["detail"]
    assert error_body["properties"]["detail"]["type"] == "string"
    for (method, path), codes in EXPECTED.items():
        responses = spec["paths"][path][method]["responses"]
        for code in codes - {200, 202, 422}:
            if (path, code) == ("/readyz", 503):
                continue  # the readiness body, as with 200
            schema = responses[str(code)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (path, code)
        if 401 in codes:
            assert responses["401"]["headers"]["WWW-Authenticate"]["required"] is True
        for code in {429, 503} & codes:
            if path.startswith("/api/"):
                assert responses[str(code)]["headers"]["Retry-After"]["required"] is True


def _is_error_body(response: httpx.Response) -> bool:
    body = response.json()
    return set(body) == {"detail"} and isinstance(body["detail"], str)


def _declared(settings: AdminApiSettings, key: tuple[str, str], code: int) -> bool:
    return str(code) in _spec(settings)["paths"][key[1]][key[0]]["responses"]


async def _send(
    client: httpx.AsyncClient, call: tuple[str, str, Any], **kwargs: Any
) -> httpx.Response:
    method, url, body = call
    if body is not None and "content" not in kwargs:
        kwargs["json"] = body
    return await client.request(method, url, **kwargs)


@pytest.mark.parametrize("key", list(CALLS), ids=[f"{m} {p}" for m, p in CALLS])
async def test_every_protected_operation_answers_its_declared_errors(
    client: httpx.AsyncClient,
    settings: AdminApiSettings,
    token: Callable[..., str],
    key: tuple[str, str],
) -> None:
    call = CALLS[key]
    answers: dict[int, httpx.Response] = {}
    answers[401] = await _send(client, call)
    answers[403] = await _send(
        client, call, headers={"Authorization": f"Bearer {token(grants=('view',))}"}
    )
    long_query = {"q": "x" * (settings.max_query_bytes + 1)}
    answers[414] = await _send(client, call, params=long_query)
    too_big = b"[" + b" " * settings.max_body_bytes + b"]"
    headers = {"Authorization": f"Bearer {token()}", "Content-Type": "application/json"}
    answers[413] = await _send(client, call, content=too_big, headers=headers)
    if call[2] is not None:
        answers[400] = await _send(client, call, content=b"\xff{", headers=headers)
    if 404 in EXPECTED[key]:  # unknown in the tenant
        answers[404] = await _send(client, call, headers=headers)
    for code, response in answers.items():
        assert response.status_code == code, (key, code, response.text)
        assert _declared(settings, key, code), (key, code)
        assert _is_error_body(response), (key, code, response.text)
    assert answers[401].headers["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("key", list(CALLS), ids=[f"{m} {p}" for m, p in CALLS])
async def test_an_unreachable_database_is_the_declared_503_with_retry_after(
    key: tuple[str, str],
) -> None:
    settings = make_settings(NO_DATABASE)
    bus = RecordingBus()
    app = create_app(settings, bus=bus)
    headers = {"Authorization": f"Bearer {issue_dev_token(settings, 'admin-1', 'acme')}"}
    async with served(app) as c:
        response = await _send(c, CALLS[key], headers=headers)
        ready = await c.get("/readyz")
    assert response.status_code == 503, (key, response.text)
    assert response.headers["Retry-After"] == "5"
    assert "database" in response.json()["detail"]
    if key == ("post", "/api/v1/sessions/terminations"):
        # by ids nothing is read before the command goes out: it is published, and the 503
        # says it may be applied (the database failed recording it), never nothing changed
        assert len(bus.commands) == 1
        assert set(response.json()) == {"detail", "reason"}, response.text
        assert response.json()["reason"] == "outcome_unknown"
    else:
        assert _is_error_body(response) and not bus.commands and not bus.settings
    assert _declared(settings, key, 503)
    assert ready.status_code == 503 and ready.json()["status"] == "not ready"


# GET too: /api/v1/sessions/{session_id} must not take `terminations` for a session id (v2
# handles are 43 characters, so it would answer 422 for the id instead of 405 for the method)
@pytest.mark.parametrize("method", ["OPTIONS", "DELETE", "PATCH", "PUT", "GET"])
async def test_a_method_a_path_lacks_is_405_naming_the_documented_ones(
    client: httpx.AsyncClient, auth: dict[str, str], method: str
) -> None:
    response = await client.request(method, "/api/v1/sessions/terminations", headers=auth)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
