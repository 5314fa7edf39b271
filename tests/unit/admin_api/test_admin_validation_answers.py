"""The admin API's 422 (`entrypoints.errors`): FastAPI's body, less what JSON cannot carry. A
lone surrogate or a non-finite number in an error made rendering the refusal raise (a 500)."""

from __future__ import annotations

from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from admin_api.entrypoints.errors import install_error_handlers
from asgi_served import served


def _refusing(*errors: dict[str, Any]) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/refused")
    async def refused() -> None:
        raise RequestValidationError(list(errors))

    return app


async def _answer(*errors: dict[str, Any]) -> httpx.Response:
    async with served(_refusing(*errors)) as client:
        return await client.get("/refused")


async def test_input_and_ctx_json_cannot_carry_are_left_out_the_field_still_named() -> None:
    response = await _answer(
        {
            "type": "finite_number",
            "loc": ("body", "max_session_seconds"),
            "msg": "Input should be a finite number",
            "input": float("nan"),
            "ctx": {"limit": float("inf")},
        },
        {"type": "string_unicode", "loc": ("body", "q"), "msg": "bad", "input": "a\ud800"},
        {"type": "too_short", "loc": ("query", "q"), "msg": "short", "input": "", "ctx": {"n": 1}},
    )
    assert response.status_code == 422
    assert response.json() == {
        "detail": [
            {
                "type": "finite_number",
                "loc": ["body", "max_session_seconds"],
                "msg": "Input should be a finite number",
            },
            {"type": "string_unicode", "loc": ["body", "q"], "msg": "bad"},
            # what JSON can carry is kept, as FastAPI answers it
            {
                "type": "too_short",
                "loc": ["query", "q"],
                "msg": "short",
                "input": "",
                "ctx": {"n": 1},
            },
        ]
    }


async def test_a_lone_surrogate_in_loc_or_msg_is_escaped() -> None:
    response = await _answer(
        {"type": "extra_forbidden", "loc": ("body", "\ud800", 0), "msg": "no \udc00 here"}
    )
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "extra_forbidden", "loc": ["body", "\\ud800", 0], "msg": "no \\udc00 here"}
    ]
