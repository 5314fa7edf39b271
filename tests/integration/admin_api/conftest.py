"""Admin API fixtures: a migrated read model per backend, the app over ASGI, tokens, rows."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
from admin_api_support import NOW, TENANT, RecordingBus, make_settings
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.app import create_app
from admin_api.auth import EDIT_USER_SESSIONS, issue_dev_token
from admin_api.settings import AdminApiSettings
from asgi_served import served
from migrated import MigratedCopies
from read_model.database import make_engine, open_store
from read_model.store import Store


@pytest.fixture
async def engine(db_url: str, migrated: MigratedCopies) -> AsyncIterator[AsyncEngine]:
    """The read model at the current schema (the migrations create every table)."""
    await migrated.migrate(db_url)
    engine = make_engine(db_url)
    yield engine
    await engine.dispose()


@pytest.fixture
async def store(engine: AsyncEngine, db_url: str) -> AsyncIterator[Store]:
    """The read model's store on that database, as the admin API's use cases take it."""
    store = open_store(db_url)
    yield store
    await store.dispose()


@pytest.fixture
def settings(db_url: str) -> AdminApiSettings:
    return make_settings(db_url)


@pytest.fixture
def bus() -> RecordingBus:
    return RecordingBus()


@pytest.fixture
async def client(
    engine: AsyncEngine, settings: AdminApiSettings, bus: RecordingBus
) -> AsyncIterator[httpx.AsyncClient]:
    """The app (lifespan run) behind an ASGI client, at the fixed time NOW."""
    app = create_app(settings, bus=bus, clock=lambda: NOW)
    async with served(app) as c:
        yield c


@pytest.fixture
def token(settings: AdminApiSettings) -> Callable[..., str]:
    """A development token; `token(tenant=..., grants=[...])` for others."""

    def make(
        tenant: str = TENANT, grants: tuple[str, ...] = (EDIT_USER_SESSIONS,), **kw: Any
    ) -> str:
        return issue_dev_token(
            settings, kw.get("sub", "admin-1"), tenant, grants, kw.get("ttl", 600)
        )

    return make


@pytest.fixture
def auth(token: Callable[..., str]) -> dict[str, str]:
    """Headers of an admin of TENANT with edit_user_sessions."""
    return {"Authorization": f"Bearer {token()}"}
