"""Partitions whose stored position was found past their end: `positions_past_end`.

A registry found such a partition (the records there skipped as applied already) and held
its sweeps, logged and counted it, until it restarted: a restart before the repair (a crash,
a rollout) forgot it, swept on the clock again, and resolved its alert (stop 69's note). The
registry now keeps the note here, until `positions set` moves the partition's position (or a
swap puts a rebuilt read model in place).

A new, small table: nothing waits for it. The release before writes no row.

Revision ID: 1801_positions_past_end
Revises: 1701_registry_signing
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1801_positions_past_end"
down_revision: str | Sequence[str] | None = "1701_registry_signing"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `positions_past_end`, empty."""
    op.create_table(
        "positions_past_end",
        sa.Column("consumer", sa.String(length=128), nullable=False),
        sa.Column("topic", sa.String(length=249), nullable=False),
        sa.Column("partition", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("stored", sa.BigInteger(), nullable=False),
        sa.Column("end_offset", sa.BigInteger(), nullable=False),
        sa.Column("noted_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "topic", "partition", name="pk_positions_past_end"),
    )


def downgrade() -> None:
    """Drop it: a restart forgets a position past the end again."""
    op.drop_table("positions_past_end")
