"""The initial read model: exactly the tables of `read_model.tables`.

Revision ID: 0001
Revises:
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create the read model's tables."""
    op.create_table(
        "applied_commands",
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("terminated", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("command_id"),
    )
    op.create_index(
        "ix_applied_commands_tenant_time",
        "applied_commands",
        ["tenant_id", "requested_at"],
        unique=False,
    )

    op.create_table(
        "consumer_positions",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("next_offset", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition"),
    )
    op.create_table(
        "outbox",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("key", sa.LargeBinary(), nullable=False),
        sa.Column("value", sa.LargeBinary(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "revocations",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("valid_until", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "session_id"),
    )
    op.create_index("ix_revocations_valid_until", "revocations", ["valid_until"], unique=False)

    op.create_table(
        "session_history",
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("occurred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("event_id"),
    )
    op.create_index(
        "ix_session_history_session",
        "session_history",
        ["tenant_id", "session_id", "occurred_at"],
        unique=False,
    )

    op.create_table(
        "sessions",
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("session_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=True),
        sa.Column("user_name", sa.String(length=256), nullable=True),
        sa.Column("session_type", sa.String(length=16), nullable=True),
        sa.Column("ip_address", sa.String(length=45), nullable=True),
        sa.Column("ip_packed", sa.LargeBinary(length=16), nullable=True),
        sa.Column("user_agent", sa.String(length=1024), nullable=True),
        sa.Column("device", sa.String(length=128), nullable=True),
        sa.Column("max_session_seconds", sa.BigInteger(), nullable=True),
        sa.Column("idle_timeout_seconds", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_activity_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("current_ip", sa.String(length=45), nullable=True),
        sa.Column("current_ip_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("state", sa.String(length=16), server_default="open", nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_reason", sa.String(length=16), nullable=True),
        sa.Column("ended_by", sa.String(length=128), nullable=True),
        sa.PrimaryKeyConstraint("tenant_id", "session_id"),
    )
    op.create_index("ix_sessions_expiry", "sessions", ["state", "expires_at"], unique=False)
    op.create_index(
        "ix_sessions_listing",
        "sessions",
        ["tenant_id", "state", "last_activity_at", "session_id"],
        unique=False,
    )

    op.create_table(
        "termination_requests",
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("requested_by", sa.String(length=128), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("target", sa.JSON(), nullable=False),
        sa.Column("requested", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("command_id"),
    )
    op.create_index(
        "ix_termination_requests_tenant_time",
        "termination_requests",
        ["tenant_id", "requested_at"],
        unique=False,
    )


def downgrade() -> None:
    """Drop the read model's tables."""
    op.drop_index("ix_termination_requests_tenant_time", table_name="termination_requests")

    op.drop_table("termination_requests")
    op.drop_index("ix_sessions_listing", table_name="sessions")
    op.drop_index("ix_sessions_expiry", table_name="sessions")

    op.drop_table("sessions")
    op.drop_index("ix_session_history_session", table_name="session_history")

    op.drop_table("session_history")
    op.drop_index("ix_revocations_valid_until", table_name="revocations")

    op.drop_table("revocations")
    op.drop_table("outbox")
    op.drop_table("consumer_positions")
    op.drop_index("ix_applied_commands_tenant_time", table_name="applied_commands")

    op.drop_table("applied_commands")
