"""The directory of user names keeps each name lowered (issue 18; PostgreSQL only).

`ILIKE` lowers both sides with the column's collation on every comparison: a term the trigram
index cannot look up (one or two characters, such as `ü`) read all of a tenant's names and
lowered each (2 to 4 ms for three thousand names at a million sessions). The directory now
stores `lower(user_name)` (a generated column, kept by PostgreSQL on every insert, so its
triggers are unchanged), and an index holds it beside the name: such a term is matched with
`LIKE lower(pattern)` on it, an index-only read of the tenant's entries (under 1 ms).

In a multibyte database `ILIKE` is exactly `lower(text) LIKE lower(pattern)` in the same
collation, so the names found are the same.

Adding the column rewrites the directory (one row per tenant and name, small), holding off
writes of new names meanwhile.

Revision ID: 0701_folded_user_names
Revises: 0601_split_terms
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import USER_NAMES_FOLDED, USER_NAMES_FOLDED_INDEX

revision: str = "0701_folded_user_names"
down_revision: str | Sequence[str] | None = "0601_split_terms"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The lowered name, and the index that holds it."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(USER_NAMES_FOLDED)
    op.execute(USER_NAMES_FOLDED_INDEX)
    op.execute("ANALYZE listed_user_names")


def downgrade() -> None:
    """The directory as revision 0501 made it."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_listed_user_names_folded")
    op.execute("ALTER TABLE listed_user_names DROP COLUMN IF EXISTS user_name_folded")
