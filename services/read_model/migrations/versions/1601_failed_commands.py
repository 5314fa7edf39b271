"""Termination commands the registry gave up on: `failed_commands`.

A termination command whose application failed by itself went to the dead-letter topic, and
its status stayed `pending` with `terminated: 0` for ever: the admin saw no outcome, and a
termination by a text filter that gave up after some chunks hid what those chunks had ended
(noticed at stop 61, 2026-12-06). The registry now records each such command here, in the
transaction that gives it up, and the status says `failed` with what it ended.

A new, small table: nothing waits for it. The release before writes no row: its commands given
up stay `pending`, as they were.

Revision ID: 1601_failed_commands
Revises: 1501_settings_history
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1601_failed_commands"
down_revision: str | Sequence[str] | None = "1501_settings_history"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `failed_commands`, empty."""
    op.create_table(
        "failed_commands",
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("requested_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("failed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("terminated", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "command_id", name="pk_failed_commands"),
    )


def downgrade() -> None:
    """Drop it: a command given up shows `pending` again."""
    op.drop_table("failed_commands")
