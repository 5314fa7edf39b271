"""The admin API's per-tenant search budgets, shared by its processes in `search_budgets`.

Each admin API process kept its tenants' search budgets in memory
(`admin_api.service_layer.tenant_slots.SearchBudget`), so N processes behind a load balancer
gave a tenant N budgets. Every process now adds what its tenants' searches spent to this
table and takes in what the others spent (`admin_api.service_layer.shared_budgets`), about
once a second. A new, empty table: nothing waits for it, and a process that finds it absent
keeps its budgets to itself, as before.

Revision ID: 1001_search_budgets
Revises: 0901_deferred_terminations
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "1001_search_budgets"
down_revision: str | Sequence[str] | None = "0901_deferred_terminations"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create `search_budgets`."""
    op.create_table(
        "search_budgets",
        sa.Column("budget", sa.String(length=32), nullable=False),
        sa.Column("tenant_id", sa.String(length=64), nullable=False),
        sa.Column("seconds", sa.Double(), nullable=False),
        sa.Column("at", sa.Double(), nullable=False),
        sa.Column("size", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("budget", "tenant_id", name="pk_search_budgets"),
    )


def downgrade() -> None:
    """Drop `search_budgets`: the admin API processes keep their budgets to themselves again
    (each logs that it cannot share them)."""
    op.drop_table("search_budgets")
