"""The session id trigram index finds terms that `-` or `_` split (issue 18; PostgreSQL only).

pg_trgm splits text into words at every character that is not a letter or a digit. Session
ids are base64url, so `-` and `_` end words in them, and a term such as `u-h` or `Q-_-q` has
no trigram of its own: looked up, it read a posting entry for nearly every session ("a word
ending in u"); walked, it read the tenant's sort order until its page was full (seconds at
four million sessions for a term in few ids). The index now holds
`translate(session_id, '-_', 'жш')`: the two separators written as letters no handle holds,
so every three characters of an id are a trigram, and the search compares the same
expression (`read_model.session_query.session_id_ilike`, `session_id_contains`).

The planner keeps no statistics of an expression only a partial index holds: without them it
took a 3-character pattern for 4% of the rows and read the table instead (seconds at ten
million sessions). Extended statistics on the expression give it the same histogram the
column has; the revision analyzes the table to fill them.

Rebuilding the index reads every listed session once (about 40 s a million on the bench's
machine) and holds off writes to `sessions` meanwhile, as revisions 0401 and 0501 do.

Revision ID: 0601_split_terms
Revises: 0501_user_names
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import LISTED

revision: str = "0601_split_terms"
down_revision: str | Sequence[str] | None = "0501_user_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_sessions_trgm_session_id"
# this revision's statements as they were (revision 0801 replaced the index with another)
SESSION_ID_TEXT = "translate(session_id, '-_', 'жш')"
SESSION_ID_TEXT_STATISTICS = (
    f"CREATE STATISTICS IF NOT EXISTS st_sessions_session_id_text ON ({SESSION_ID_TEXT}) "
    "FROM sessions"
)
TRANSLATED_INDEX = (
    f"CREATE INDEX {INDEX} ON sessions "
    f"USING gin (tenant_id, {SESSION_ID_TEXT} gin_trgm_ops) WHERE {LISTED}"
)


def upgrade() -> None:
    """The session id trigram index over the id with its separators as letters."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(TRANSLATED_INDEX)
    op.execute(SESSION_ID_TEXT_STATISTICS)
    op.execute("ANALYZE sessions")


def downgrade() -> None:
    """Revision 0101's index over the session id as it is."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP STATISTICS IF EXISTS st_sessions_session_id_text")
    op.execute(f"DROP INDEX IF EXISTS {INDEX}")
    op.execute(
        f"CREATE INDEX {INDEX} ON sessions "
        f"USING gin (tenant_id, session_id gin_trgm_ops) WHERE {LISTED}"
    )
