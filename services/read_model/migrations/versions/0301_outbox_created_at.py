"""Outbox rows carry `created_at` (the database's clock when queued), for the oldest-age metric,
and `headers` (the record's Kafka headers: the trace context of the command that caused it).

Rows already queued get the time of the migration. SQLite cannot add a column with a
non-constant default in place, so its table is copied (the outbox is small: it is drained
after every batch).

Revision ID: 0301_outbox_created_at
Revises: 0201_contract_v2
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0301_outbox_created_at"
down_revision: str | Sequence[str] | None = "0201_contract_v2"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add `outbox.created_at`, defaulting to now."""
    column = sa.Column(
        "created_at", sa.DateTime(timezone=True), nullable=False, server_default=sa.func.now()
    )
    headers = sa.Column("headers", sa.LargeBinary(), nullable=True)
    if op.get_bind().dialect.name != "sqlite":
        op.add_column("outbox", column)
        op.add_column("outbox", headers)
        return
    with op.batch_alter_table("outbox", recreate="always") as batch:
        batch.add_column(column)
        batch.add_column(headers)


def downgrade() -> None:
    """Drop `outbox.created_at` and `outbox.headers`."""
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("headers")
        batch.drop_column("created_at")
