"""A token whose `sub` or `tenant` the contract refuses is a 401 everywhere (2026-12-06): the
verifier took `tenant: "acme\\n"` (`$` matched before the final newline) and control
characters in `sub`, reads answered as a tenant of their own, and a termination or a settings
change, whose command the contract refused, was a 500."""

from __future__ import annotations

import time

import httpx
import jwt
import pytest
from admin_api_support import RecordingBus, handle

from admin_api.auth import EDIT_USER_SESSIONS
from admin_api.settings import AdminApiSettings

CLAIMS = [
    ({"tenant": "acme\n"}, "claim 'tenant' must be a tenant id"),
    ({"sub": "a\x7fb"}, "claim 'sub' must be a user id"),
    ({"sub": "a\nb"}, "claim 'sub' must be a user id"),
    ({"sub": "a\ud800"}, "claim 'sub' must be a user id"),
]
CALLS = [
    ("GET", "/api/v1/sessions", None),
    ("POST", "/api/v1/sessions/terminations", {"session_ids": [handle("ours")]}),
    (
        "PUT",
        "/api/v1/settings/sessions/browser",
        {"max_session_seconds": 3600, "idle_timeout_seconds": 600},
    ),
]


@pytest.mark.parametrize(("claims", "reason"), CLAIMS, ids=[repr(c) for c, _ in CLAIMS])
async def test_a_claim_the_contract_refuses_is_401_on_reads_and_changes(
    client: httpx.AsyncClient,
    settings: AdminApiSettings,
    bus: RecordingBus,
    claims: dict[str, str],
    reason: str,
) -> None:
    now = int(time.time())
    token = jwt.encode(
        {
            "sub": "admin-1",
            "tenant": "acme",
            "grants": [EDIT_USER_SESSIONS],
            "aud": "session-control",
            "iat": now,
            "exp": now + 300,
            **claims,
        },
        settings.hs256_keys[0],
        algorithm="HS256",
    )
    for method, path, body in CALLS:
        response = await client.request(
            method, path, json=body, headers={"Authorization": f"Bearer {token}"}
        )
        assert response.status_code == 401, (method, response.text)
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert response.json()["detail"].startswith(f"invalid token: {reason}")
    assert bus.commands == [] and bus.settings == []
