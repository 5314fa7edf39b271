"""Tables the admin API owns, on the read model's shared `metadata`.

`termination_requests` lives in `session_registry.adapters.tables` beside the rest of the read
model; `session_settings` is new here. The Alembic revision `admin_api_0001` creates it and the
listing indexes (see `session_registry/migrations/versions/`).
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, DateTime, String, Table

from session_registry.adapters.tables import metadata

# The current session settings of a tenant for one session type; no row means the defaults.
session_settings = Table(
    "session_settings",
    metadata,
    Column("tenant_id", String(64), primary_key=True),
    Column("session_type", String(16), primary_key=True),
    Column("max_session_seconds", BigInteger, nullable=False),
    Column("idle_timeout_seconds", BigInteger, nullable=False),
    Column("updated_at", DateTime(timezone=True), nullable=False),
    Column("updated_by", String(128), nullable=False),
)

__all__ = ["session_settings"]
