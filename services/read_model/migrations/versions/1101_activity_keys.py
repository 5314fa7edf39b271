"""Each session's coarse last activity beside its id's keys, in one index (issue 18; PostgreSQL).

Three characters of a session id are in about one id of 800: some 5,000 sessions of a tenant
of four million. Read through revision 0801's keys, the first page cost a heap page per
match (17-21 ms warm, several times that cold), for the 51 sessions of the page. The keys
index now has a second column: the ten minutes of each session's last activity, hashed with
the tenant (`read_model.listing_indexes.ACTIVITY_FUNCTIONS`). A search in the default order
reads the piece's matches in the tenant's newest buckets only, intersected inside the index
(`admin_api.adapters.session_search._by_activity`).

This revision creates the functions. The index (`ix_sessions_id_activity_keys`) is built
with `CREATE INDEX CONCURRENTLY` after the migrations' transaction (`read_model.online_indexes`,
as revision 0801's was), and revision 0801's `ix_sessions_session_id_keys` is dropped once it
is valid. Its first column is the same expression as the index it replaces, so every lookup
by the id's keys is answered by one or the other throughout the build.

Revision ID: 1101_activity_keys
Revises: 1001_search_budgets
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import (
    ACTIVITY_BUCKET,
    ACTIVITY_FUNCTIONS,
    ACTIVITY_KEYS,
    ACTIVITY_WINDOW,
    ID_KEYS_INDEX,
    KEYS_INDEX_NAME,
)

revision: str = "1101_activity_keys"
down_revision: str | Sequence[str] | None = "1001_search_budgets"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """The functions of the activity's keys; the index follows, built concurrently."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in ACTIVITY_FUNCTIONS:
        op.execute(statement)


def downgrade() -> None:
    """Revision 0801's index of the id's keys alone (built here, in the transaction: writes
    to `sessions` wait for it), without the activity's keys."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(ID_KEYS_INDEX)
    op.execute(f"DROP INDEX IF EXISTS {KEYS_INDEX_NAME}")
    op.execute(f"DROP FUNCTION IF EXISTS {ACTIVITY_WINDOW}(text, bigint, bigint)")
    op.execute(f"DROP FUNCTION IF EXISTS {ACTIVITY_KEYS}(text, timestamptz)")
    op.execute(f"DROP FUNCTION IF EXISTS {ACTIVITY_BUCKET}(timestamptz)")
