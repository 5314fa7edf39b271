"""How the running registry reads `session.expired` records: `registry_signing`.

`rebuild --swap` took the signing keys and `SESSIONS_RECORD_SIGNING_SINCE` of the SRE's shell,
and a later "since" there applied every unsigned `session.expired` appended in between, the
forged ones the registry had dead-lettered too: swapped in, their sessions expired, beyond a
termination's reach (a review, stop 70). The registry now writes its own here at each start,
and the swap refuses a shell that differs.

A new, small table: nothing waits for it. The release before writes no row: a swap then
warns that it cannot compare.

Revision ID: 1701_registry_signing
Revises: 1601_failed_commands
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1701_registry_signing"
down_revision: str | Sequence[str] | None = "1601_failed_commands"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `registry_signing`, empty."""
    op.create_table(
        "registry_signing",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("key_ids", sa.String(length=1000), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_registry_signing"),
    )


def downgrade() -> None:
    """Drop it: a swap can no longer compare."""
    op.drop_table("registry_signing")
