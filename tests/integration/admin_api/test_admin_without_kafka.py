"""Without a reachable broker the API still reads, is degraded (200: reads are served), and
refuses writes with 503."""

from __future__ import annotations

import pytest
from admin_api_support import NOW, handle, insert, make_settings, session_row
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import app_from_env, create_app
from admin_api.auth import issue_dev_token
from asgi_served import served

KEPT = handle("kept")


async def test_reads_work_writes_are_503_and_readyz_says_why(
    engine: AsyncEngine, db_url: str
) -> None:
    settings = make_settings(db_url, KAFKA_BOOTSTRAP_SERVERS="127.0.0.1:9")  # nothing listens
    app = create_app(settings, clock=lambda: NOW)  # the real Kafka bus, connecting in background
    headers = {"Authorization": f"Bearer {issue_dev_token(settings, 'admin-1', 'acme')}"}
    await insert(engine, [session_row(session_id=KEPT)])
    async with served(app) as c:
        listed = await c.get("/api/v1/sessions", headers=headers)
        assert [i["session_id"] for i in listed.json()["items"]] == [KEPT]
        ready = await c.get("/readyz")
        assert ready.status_code == 200  # reads are served: a load balancer keeps it in
        assert ready.json() == {
            "status": "degraded",
            "checks": {"database": "ok", "schema": "ok", "kafka": "connecting"},
        }
        refused = await c.post(
            "/api/v1/sessions/terminations", json={"session_ids": [KEPT]}, headers=headers
        )
        assert refused.status_code == 503 and "Kafka" in refused.json()["detail"]
        audit = await c.get("/api/v1/audit/terminations", headers=headers)
        assert audit.json()["items"] == []


def test_the_uvicorn_factory_reads_settings_when_called(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("ENVIRONMENT", "JWT_SECRET", "JWT_SECRETS", "JWKS_URL", "JWT_ISSUER"):
        monkeypatch.delenv(f"SESSIONS_{name}", raising=False)
    with pytest.raises(ValueError, match=r"SESSIONS_ENVIRONMENT=production \(the default\)"):
        app_from_env()
    monkeypatch.setenv("SESSIONS_JWT_SECRET", "s" * 40)
    with pytest.raises(ValueError, match="set SESSIONS_JWT_ISSUER"):
        app_from_env()
    monkeypatch.setenv("SESSIONS_JWT_ISSUER", "https://idp.example")
    assert app_from_env().title == "Session Control admin API"
