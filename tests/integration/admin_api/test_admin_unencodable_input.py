"""A body refused for a lone surrogate or a non-finite number is a 422 naming the field, not a
500 (2026-12-06): FastAPI's own 422 echoed the refused value as `input`, which JSON cannot
carry, so rendering the refusal raised."""

from __future__ import annotations

import httpx
import pytest
from admin_api_support import RecordingBus

TERMINATIONS = "/api/v1/sessions/terminations"
SETTINGS = "/api/v1/settings/sessions/browser"

UNENCODABLE = [
    ("POST", TERMINATIONS, r'{"filter": {"q": "\ud800"}}', ["body", "filter", "q"]),
    ("POST", TERMINATIONS, r'{"filter": {"user_id": "\udc00"}}', ["body", "filter", "user_id"]),
    ("POST", TERMINATIONS, r'{"session_ids": ["\udc00"]}', ["body", "session_ids", 0]),
    ("POST", TERMINATIONS, '{"session_ids": NaN}', ["body", "session_ids"]),
    ("POST", TERMINATIONS, '{"reason": Infinity, "filter": {}}', ["body", "reason"]),
    ("POST", TERMINATIONS, "1e999", ["body"]),
    (
        "PUT",
        SETTINGS,
        '{"max_session_seconds": NaN, "idle_timeout_seconds": 60}',
        ["body", "max_session_seconds"],
    ),
    (
        "PUT",
        SETTINGS,
        '{"max_session_seconds": 1e999, "idle_timeout_seconds": 60}',
        ["body", "max_session_seconds"],
    ),
    (
        "PUT",
        SETTINGS,
        r'{"max_session_seconds": "\ud800", "idle_timeout_seconds": 60}',
        ["body", "max_session_seconds"],
    ),
]


@pytest.mark.parametrize(
    ("method", "path", "body", "loc"), UNENCODABLE, ids=[body for _, _, body, _ in UNENCODABLE]
)
async def test_a_refused_value_json_cannot_carry_is_422_naming_the_field(
    client: httpx.AsyncClient,
    auth: dict[str, str],
    bus: RecordingBus,
    method: str,
    path: str,
    body: str,
    loc: list[str | int],
) -> None:
    headers = {**auth, "Content-Type": "application/json"}
    response = await client.request(method, path, content=body.encode(), headers=headers)
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert loc in [error["loc"] for error in errors], errors
    assert all({"type", "loc", "msg"} <= error.keys() for error in errors), errors
    assert "input" not in errors[0]  # the value itself is what JSON cannot carry
    assert bus.commands == [] and bus.settings == []


async def test_an_ordinary_422_is_answered_as_fastapi_answers_it(
    client: httpx.AsyncClient, auth: dict[str, str]
) -> None:
    """What clients already got: every error with `type`, `loc`, `msg`, `input` and `ctx`."""
    body = {"session_ids": ["a"], "reason": "boredom"}
    response = await client.post(TERMINATIONS, json=body, headers=auth)
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "string_too_short",
                "loc": ["body", "session_ids", 0],
                "msg": "String should have at least 43 characters",
                "input": "a",
                "ctx": {"min_length": 43},
            },
            {
                "type": "enum",
                "loc": ["body", "reason"],
                "msg": "Input should be 'admin', 'logout' or 'security'",
                "input": "boredom",
                "ctx": {"expected": "'admin', 'logout' or 'security'"},
            },
        ]
    }
