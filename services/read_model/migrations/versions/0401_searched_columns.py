"""The listing's B-tree indexes carry what a search compares; an index for `user_id` (issue 18).

Each sort index of revision 0101 is rebuilt with `INCLUDE (expires_at, session_type,
user_name)` (less what is its key already): a search's first page walks the sort order for
its first matches as an index-only scan, never visiting the table
(`admin_api.adapters.session_search`). The definitions are `read_model.listing_indexes`'; a
database migrated before this revision gets them here, one built after it at 0101 already has
them (rebuilding its indexes again is cheap while the table is empty). And a B-tree on
`(tenant_id, user_id)` answers the list's `user_id` condition without scanning the tenant.
PostgreSQL only.

Revision ID: 0401_searched_columns
Revises: 0301_outbox_created_at
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import BY_USER, SORT_NAMES, sort_statements

revision: str = "0401_searched_columns"
down_revision: str | Sequence[str] | None = "0301_outbox_created_at"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Rebuild the sort indexes from `read_model.listing_indexes`."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for name in (*SORT_NAMES, "ix_sessions_open_user_id"):
        op.execute(f"DROP INDEX IF EXISTS {name}")
    for statement in (*sort_statements(), BY_USER):
        op.execute(statement)


def downgrade() -> None:
    """The sort indexes without the searched columns would be revision 0101's; they are not
    restored (the wider ones serve every query the narrower did)."""
