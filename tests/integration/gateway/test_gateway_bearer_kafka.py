"""A session carried as `Authorization: Bearer <id>` or `?access_token=<id>` is refused once its
revocation arrives through Kafka (uvicorn over loopback, a real broker, a FastAPI app reading
the session with `HTTPBearer` and `Query()`).

Before stop 67 the gateway read neither: both were served after the revocation."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
import pytest
from fastapi import Depends, FastAPI, Query
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from auth_gateway import SessionGateway
from polling import until

pytestmark = pytest.mark.kafka

STOLEN = "stolen-credential-of-a-phone"
OTHER = "another-credential-of-a-phone"


def service() -> FastAPI:
    """A service whose mobile clients send a bearer token and whose sockets send a parameter."""
    app = FastAPI()

    @app.get("/api/me")
    async def me(
        bearer: HTTPAuthorizationCredentials | None = Depends(HTTPBearer(auto_error=False)),
        access_token: str | None = Query(default=None),
    ) -> dict[str, str | None]:
        return {"session": bearer.credentials if bearer else access_token}

    return app


async def test_bearer_and_query_sessions_are_refused_once_revoked_through_kafka(
    serve: object, revoke: object, broker_gateway: Callable[..., SessionGateway]
) -> None:
    gateway = broker_gateway(
        gateway_header_name="Authorization",
        gateway_header_scheme="Bearer",
        gateway_query_param="access_token",
    )
    app = service()
    gateway.install(app)
    async with serve(app) as url, httpx.AsyncClient(base_url=url) as client:  # type: ignore[operator]
        async with asyncio.timeout(30):
            await gateway.wait_ready()
        bearer = {"authorization": f"Bearer {STOLEN}"}
        before = await client.get("/api/me", headers=bearer)
        assert before.status_code == 200 and before.json() == {"session": STOLEN}

        await revoke(STOLEN)  # type: ignore[operator]

        async def applied() -> bool:
            return gateway.is_revoked(STOLEN)

        await until(applied, 20, "the gateway applied the revocation")
        by_header = await client.get("/api/me", headers=bearer)
        by_query = await client.get("/api/me", params={"access_token": STOLEN})
        by_name_encoded = await client.get(f"/api/me?%61ccess_token={STOLEN}")
        page = await client.get("/api/me", headers={**bearer, "accept": "text/html"})
        spelled = await client.get("/api/me", headers={"authorization": f"Bearer:{STOLEN}"})
        other = await client.get("/api/me", headers={"authorization": f"bearer {OTHER}"})
    for refused in (by_header, by_query, by_name_encoded):
        assert refused.status_code == 401 and refused.json() == {"error": "session_revoked"}
    assert page.status_code == 303 and page.headers["location"].startswith("/signin")
    assert spelled.status_code == 400 and spelled.json() == {"error": "malformed_credential"}
    assert other.status_code == 200 and other.json() == {"session": OTHER}
