"""Terminations by a text filter wait in `deferred_terminations` while the registry resolves them.

The registry resolved a `sessions.terminate` command by filter in the transaction of the batch
it arrived in, which every tenant's events and revocations wait behind; a text no index answers
read the tenant's whole listed set there (seconds at millions of sessions). Such a command is
now kept in this table by the batch, and resolved beside the consumer loop
(`session_registry.service_layer.deferred_terminations`): its targets read outside any write
transaction, each chunk of them ended in a transaction of its own. A new, empty table: nothing
waits for it.

Revision ID: 0901_deferred_terminations
Revises: 0801_session_id_keys
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0901_deferred_terminations"
down_revision: str | Sequence[str] | None = "0801_session_id_keys"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `deferred_terminations`."""
    op.create_table(
        "deferred_terminations",
        sa.Column("command_id", sa.String(length=36), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("partition", sa.Integer(), nullable=True),
        sa.Column("record_offset", sa.BigInteger(), nullable=True),
        sa.Column("trace_headers", sa.LargeBinary(), nullable=True),
        sa.Column("command", sa.JSON(), nullable=False),
        sa.Column("deferred_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_after", sa.String(length=128), nullable=True),
        sa.Column("terminated", sa.Integer(), server_default="0", nullable=False),
        sa.PrimaryKeyConstraint("tenant_id", "command_id", name="pk_deferred_terminations"),
    )


def downgrade() -> None:
    """Drop `deferred_terminations`: a command still in it is not applied (the registry of the
    revision below applies commands from the topic only)."""
    op.drop_table("deferred_terminations")
