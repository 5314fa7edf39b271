"""Helpers the admin API's integration tests import: fixed time, tenants, handles, rows, a
recording bus."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi import FastAPI
from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncEngine

from admin_api.adapters.session_listing import SORT_KEYS
from admin_api.domain.listing import ListQuery
from admin_api.settings import AdminApiSettings
from read_model.session_query import active_clause, binary_text, conditions_clause
from read_model.store import Store
from read_model.tables import sessions
from session_contracts.addresses import pack_ip
from session_contracts.handles import session_handle
from session_contracts.models import SessionSettingsChanged, TerminateSessions

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
TENANT, OTHER_TENANT = "acme", "globex"


def handle(credential: str, tenant: str = TENANT) -> str:
    """The session id on the wire (contract v2) of the session whose credential is `credential`
    in `tenant`: its handle, as `SessionEventPublisher` and the gateway derive it."""
    return session_handle(tenant, credential)


@dataclass
class RecordingBus:
    """Stands in for Kafka where a test is about HTTP, not the broker."""

    commands: list[TerminateSessions] = field(default_factory=list)
    settings: list[SessionSettingsChanged] = field(default_factory=list)
    ready: bool = True

    async def terminate(self, command: TerminateSessions) -> None:
        self.commands.append(command)

    async def settings_changed(self, record: SessionSettingsChanged) -> None:
        self.settings.append(record)


def make_settings(db_url: str, **overrides: Any) -> AdminApiSettings:
    """Settings for a test app; nothing read from the environment matters."""
    values: dict[str, Any] = {
        "database_url": db_url,
        "environment": "development",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:1",
        **overrides,
    }
    return AdminApiSettings(**values)


def served_routes(app: FastAPI) -> list[tuple[str, str]]:
    """(method, path template) of every route the app serves, included routers' too."""
    try:  # FastAPI >= 0.165 keeps included routers nested in app.routes; this flattens them
        from fastapi.routing import iter_route_contexts
    except ImportError:
        contexts: Any = app.routes
    else:
        contexts = iter_route_contexts(app.routes)
    found = []
    for context in contexts:
        path = getattr(context, "path_format", None) or context.path
        methods = getattr(context, "methods", None)
        if methods is None:  # a mount: every method
            found.append(("*", path))
        for method in sorted((methods or set()) - {"HEAD"}):
            found.append((method, path))
    return found


_ids = itertools.count()


def session_row(**overrides: Any) -> dict[str, Any]:
    """An active browser session of TENANT, created an hour before NOW, named by the handle of
    credential `s-<n>` in its tenant; override any column."""
    n = next(_ids)
    created = overrides.pop("created_at", NOW - timedelta(hours=1))
    last = overrides.pop("last_activity_at", created + timedelta(minutes=n % 50))
    ip = overrides.pop("ip_address", f"10.0.{n % 256}.{(n * 7) % 256}")
    row: dict[str, Any] = {
        "tenant_id": TENANT,
        "session_id": handle(f"s-{n:06d}", overrides.get("tenant_id", TENANT)),
        "user_id": f"u-{n % 17}",
        "user_name": f"User {n % 17}",
        "session_type": "browser",
        "ip_address": ip,
        "ip_packed": pack_ip(ip),
        "current_ip": ip,
        "user_agent": "Mozilla/5.0",
        "device": "Firefox on Linux",
        "max_session_seconds": 30 * 86400,
        "idle_timeout_seconds": 8 * 3600,
        "created_at": created,
        "last_activity_at": last,
        "expires_at": min(created + timedelta(days=30), last + timedelta(hours=8)),
        "state": "open",
        "ended_at": None,
        "end_reason": None,
        "ended_by": None,
    }
    row.update(overrides)
    return row


async def insert(engine: AsyncEngine, rows: list[dict[str, Any]]) -> None:
    """Put rows straight into `sessions` (the registry's projection is tested elsewhere)."""
    async with engine.begin() as conn:
        await conn.execute(sessions.insert(), rows)


async def unindexed_reference(store: Store, query: ListQuery, tenant: str = TENANT) -> list[str]:
    """Every match of `tenant`'s `query` at NOW in its order, by the filter alone, without any
    index or key (on PostgreSQL the index scans are turned off): what a search must list."""
    key = SORT_KEYS[query.field]
    tie = binary_text(sessions.c.session_id)
    order = (key.desc(), tie.desc()) if query.descending else (key.asc(), tie.asc())
    statement = (
        select(sessions.c.session_id)
        # the filter's conditions tested row by row: no session id keys (the tenant not given)
        .where(active_clause(tenant, NOW), conditions_clause(query.filter))
        .order_by(*order)
    )
    async with store.engine.connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            for setting in ("enable_indexscan", "enable_bitmapscan", "enable_indexonlyscan"):
                await conn.execute(text(f"SET LOCAL {setting} = off"))
        return [str(r[0]) for r in await conn.execute(statement)]
