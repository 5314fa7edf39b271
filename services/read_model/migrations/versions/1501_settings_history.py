"""Every setting a tenant's session type has had: `session_settings_history`.

A termination by `{"filter": {"policy_outdated": true}}` ends the sessions whose policy differs
from the tenant's settings. The admin confirmed a count read against the settings of that
moment, but the registry compared each session with the settings when it read the targets,
after the command's time in Kafka and in `deferred_terminations`: a change meanwhile (the
settings put back, or another type changed) left the counted sessions open, never revoked,
and ended sessions nobody counted (found by a review, 2026-12-06). The registry now compares
with the settings in force at the command's `confirmed_at`, which this table keeps.

Seeded with each tenant's current settings from their `updated_at`: a command confirmed
before a tenant's last change and read after this upgrade compares with the defaults where
that change replaced an earlier one of its own (the earlier rows were never kept). A new,
small table: nothing waits for it.

Revision ID: 1501_settings_history
Revises: 1401_creation_appended
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1501_settings_history"
down_revision: str | Sequence[str] | None = "1401_creation_appended"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `session_settings_history`, one row per current setting."""
    op.create_table(
        "session_settings_history",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("session_type", sa.String(length=16), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("max_session_seconds", sa.BigInteger(), nullable=False),
        sa.Column("idle_timeout_seconds", sa.BigInteger(), nullable=False),
        sa.Column("changed_by", sa.String(length=128), nullable=False),
        sa.PrimaryKeyConstraint(
            "tenant_id", "session_type", "since", name="pk_session_settings_history"
        ),
    )
    op.execute(
        "INSERT INTO session_settings_history (tenant_id, session_type, since, "
        "max_session_seconds, idle_timeout_seconds, changed_by) SELECT tenant_id, session_type, "
        "updated_at, max_session_seconds, idle_timeout_seconds, updated_by FROM session_settings"
    )


def downgrade() -> None:
    """Drop it: `policy_outdated` compares with the current settings again."""
    op.drop_table("session_settings_history")
