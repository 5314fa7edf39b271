"""FastAPI's 422 answer without its 500: what the admin API and the demo service install for
`RequestValidationError`."""

from __future__ import annotations

import json
from typing import Any

from fastapi import Request, status
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from session_contracts.escaping import escape_reason


def _renders(value: object) -> bool:
    """Whether a JSON response can carry `value`: as Starlette renders it, UTF-8 without NaN or
    Infinity."""
    try:
        json.dumps(value, ensure_ascii=False, allow_nan=False).encode("utf-8")
    except ValueError:  # UnicodeEncodeError is one
        return False
    return True


def _text(value: object) -> object:
    # a lone surrogate (JSON `\ud800`) cannot be UTF-8: escaped, so the field is still named
    return escape_reason(value) if isinstance(value, str) and not _renders(value) else value


def _answerable(error: dict[str, Any]) -> dict[str, Any]:
    """One of pydantic's errors as FastAPI answers it, less what JSON cannot carry: `loc`,
    `msg` and `type` with their unencodable text escaped, and `input` or `ctx` left out when
    they hold a lone surrogate or a non-finite number."""
    answer: dict[str, Any] = {}
    for name, value in error.items():
        if name == "loc":
            answer[name] = [_text(part) for part in value]
        elif name in ("msg", "type"):
            answer[name] = _text(value)
        else:
            try:
                encoded = jsonable_encoder(value)
            except ValueError:  # bytes that are not UTF-8, an object it cannot encode
                continue
            if _renders(encoded):
                answer[name] = encoded
    return answer


async def validation_failed(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422, `{"detail": [{"type", "loc", "msg", "input", "ctx"}]}`; FastAPI's own
    handler echoes `input` as sent, and a lone surrogate or NaN there made rendering the
    answer raise: a 500 for a request that was refused."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(
        {"detail": [_answerable(error) for error in exc.errors()]},
        status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
    )
