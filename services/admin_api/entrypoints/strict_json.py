"""Request bodies whose JSON objects repeat a key are refused (422), not read by their last.

`{"filter": {"user_id": "u-1"}, "filter": {}}` was accepted as `{"filter": {}}`: a proxy, an
approval step or an auditor that reads the first key saw a termination of one user's sessions,
while the API ended every session of the tenant (a review, stop 70). The API refused repeated
query parameters and `Idempotency-Key` headers already; bodies were the gap.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute


def _one_value_a_key(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """`json.loads`'s object hook: the object, or a decode error naming the repeated key."""
    found: dict[str, Any] = {}
    for key, value in pairs:
        if key in found:
            shown = json.dumps(key)[:80]
            raise json.JSONDecodeError(f"the key {shown} is given twice", "", 0)
        found[key] = value
    return found


class StrictJsonRequest(Request):
    """A request whose `json()` refuses an object that repeats a key."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = json.loads(await self.body(), object_pairs_hook=_one_value_a_key)
        return self._json


class StrictJsonRoute(APIRoute):
    """A route reading its JSON body with `StrictJsonRequest`."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def strict(request: Request) -> Response:
            return await handler(StrictJsonRequest(request.scope, request.receive))

        return strict
