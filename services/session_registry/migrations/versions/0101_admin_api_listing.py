"""The admin API's tables and listing indexes: session settings, pg_trgm search, sort keys.

Owned by the admin API (`admin_api/adapters/tables.py` declares `session_settings`). The
indexes are PostgreSQL only and partial on `state = 'open'`; every sort key ends with the
session id, compared by code point (`COLLATE "C"`), as `admin_api.adapters.session_listing`
orders. SQLite lists correctly without them, only slower.

Revision ID: 0101_admin_api
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0101_admin_api"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SORT_KEYS = {
    "last_activity": "last_activity_at",
    "created": "created_at",
    "expires": "expires_at",
    "user_name": 'user_name COLLATE "C"',
    "session_type": 'session_type COLLATE "C"',
    "ip": "(coalesce(ip_packed, ''::bytea))",
    "device": "(coalesce(device, '')) COLLATE \"C\"",
}
TRIGRAM_COLUMNS = ("user_name", "session_id", "device")
# Exactly the literal conditions of `admin_api.adapters.session_query.active_clause`, so the
# planner can prove every list query implies it; other session types never enter the indexes.
LISTED = "state = 'open' AND created_at IS NOT NULL AND session_type IN ('browser', 'mobile')"
# Counting the active sessions of a tenant reads only this index (expires_at > now).
INCLUDE = {"expires": " INCLUDE (session_type)"}


def upgrade() -> None:
    """Create `session_settings`; on PostgreSQL the search and sort indexes."""
    op.create_table(
        "session_settings",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("session_type", sa.String(length=16), nullable=False),
        sa.Column("max_session_seconds", sa.BigInteger(), nullable=False),
        sa.Column("idle_timeout_seconds", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_type"),
    )
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    for name, key in SORT_KEYS.items():
        op.execute(
            f"CREATE INDEX ix_sessions_open_{name} ON sessions "
            f'(tenant_id, {key}, session_id COLLATE "C"){INCLUDE.get(name, "")} WHERE {LISTED}'
        )
    op.execute(
        'CREATE INDEX ix_sessions_open_session_id ON sessions (tenant_id, session_id COLLATE "C") '
        f"WHERE {LISTED}"
    )
    for column in TRIGRAM_COLUMNS:
        op.execute(
            f"CREATE INDEX ix_sessions_trgm_{column} ON sessions "
            f"USING gin ({column} gin_trgm_ops) WHERE {LISTED}"
        )


def downgrade() -> None:
    """Drop what `upgrade` created (the pg_trgm extension stays: others may use it)."""
    if op.get_bind().dialect.name == "postgresql":
        for name in (*SORT_KEYS, "session_id"):
            op.execute(f"DROP INDEX IF EXISTS ix_sessions_open_{name}")
        for column in TRIGRAM_COLUMNS:
            op.execute(f"DROP INDEX IF EXISTS ix_sessions_trgm_{column}")
    op.drop_table("session_settings")
