"""Session settings and the listing indexes: pg_trgm search, sort keys, trigger-kept counts.

`read_model/tables.py` declares `session_settings` beside the rest. The indexes are PostgreSQL
only; `read_model/listing_indexes.py` defines them (a rebuild's bulk load creates them from
there too).

Revision ID: 0101_admin_api
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from read_model.listing_indexes import EXTENSIONS, LISTED, create_statements, drop_statements

revision: str = "0101_admin_api"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COUNTS_FUNCTION = """
CREATE FUNCTION listed_session_counts_apply() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'TRUNCATE' THEN
        DELETE FROM listed_session_counts;
        RETURN NULL;
    END IF;
    IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.state = 'open' AND OLD.created_at IS NOT NULL
            AND OLD.session_type IN ('browser', 'mobile') THEN
        UPDATE listed_session_counts SET sessions = sessions - 1
        WHERE tenant_id = OLD.tenant_id AND session_type = OLD.session_type;
    END IF;
    IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.state = 'open' AND NEW.created_at IS NOT NULL
            AND NEW.session_type IN ('browser', 'mobile') THEN
        INSERT INTO listed_session_counts AS c VALUES (NEW.tenant_id, NEW.session_type, 1)
        ON CONFLICT (tenant_id, session_type) DO UPDATE SET sessions = c.sessions + 1;
    END IF;
    RETURN NULL;
END
$$
"""
# Activity updates (the frequent write) change none of these columns: the trigger skips them.
MEMBERSHIP_CHANGED = (
    "OLD.state IS DISTINCT FROM NEW.state OR OLD.created_at IS DISTINCT FROM NEW.created_at "
    "OR OLD.session_type IS DISTINCT FROM NEW.session_type "
    "OR OLD.tenant_id IS DISTINCT FROM NEW.tenant_id"
)


def _create_counts() -> None:
    """`listed_session_counts`, kept by a trigger: open listed sessions per tenant and type."""
    op.execute(
        "CREATE TABLE listed_session_counts (tenant_id varchar(64) NOT NULL, "
        "session_type varchar(16) NOT NULL, sessions bigint NOT NULL, "
        "PRIMARY KEY (tenant_id, session_type))"
    )
    op.execute(COUNTS_FUNCTION)
    apply = "EXECUTE FUNCTION listed_session_counts_apply()"
    # triggers first: their lock holds writers back until the initial count is committed
    op.execute(
        f"CREATE TRIGGER listed_session_counts_ins AFTER INSERT ON sessions FOR EACH ROW {apply}"
    )
    op.execute(
        "CREATE TRIGGER listed_session_counts_upd AFTER UPDATE ON sessions FOR EACH ROW "
        f"WHEN ({MEMBERSHIP_CHANGED}) {apply}"
    )
    op.execute(
        f"CREATE TRIGGER listed_session_counts_del AFTER DELETE ON sessions FOR EACH ROW {apply}"
    )
    op.execute(
        "CREATE TRIGGER listed_session_counts_trunc AFTER TRUNCATE ON sessions "
        f"FOR EACH STATEMENT {apply}"
    )
    op.execute(
        "INSERT INTO listed_session_counts SELECT tenant_id, session_type, count(*) "
        f"FROM sessions WHERE {LISTED} GROUP BY tenant_id, session_type"
    )


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
    _create_counts()
    for extension in EXTENSIONS:
        op.execute(f"CREATE EXTENSION IF NOT EXISTS {extension}")
    for statement in create_statements():
        op.execute(statement)


def downgrade() -> None:
    """Drop what `upgrade` created (pg_trgm and btree_gin stay: others may use them)."""
    if op.get_bind().dialect.name == "postgresql":
        for trigger in ("ins", "upd", "del", "trunc"):
            op.execute(f"DROP TRIGGER IF EXISTS listed_session_counts_{trigger} ON sessions")
        op.execute("DROP FUNCTION IF EXISTS listed_session_counts_apply()")
        op.execute("DROP TABLE IF EXISTS listed_session_counts")
        for statement in drop_statements():
            op.execute(statement)
    op.drop_table("session_settings")
