"""The session id's own index: a tenant's pieces of its ids (issue 18; PostgreSQL only).

The trigram index of the session ids (revisions 0101 and 0601) gave, for three characters of
an id, the ids of every tenant holding them, each tested on its heap page: at a million
sessions 1,275 candidates for the tenant's 487 (6-7 ms), and with the tenant as an index
condition the tenant's whole posting list. It is replaced by an index of each id's keys
(`read_model.listing_indexes.KEYS_FUNCTION`): every three characters of the id, lowered,
hashed with the tenant's id, so that a key's posting list holds one tenant's ids. The
translated id's extended statistics go with its index; the keys have none (they are all
about equally rare: `ANALYZE` would keep no most common elements of them).

Building the index reads every listed session once and computes its 41 keys (about 100 µs a
session on the bench's machine: some 2 minutes a million; 15 min 47 s at ten million). Built
here, in the migrations' transaction, it held off every write to `sessions` for that long, as
revisions 0401, 0501 and 0601 still do. So this revision only creates the function: the
index is built with `CREATE INDEX CONCURRENTLY` once the transaction has committed, and the
trigram index dropped after it is valid (`read_model.online_indexes`), while the registry
keeps writing. A database created at this revision or later has the index from revision
0101 (`create_statements`) already.

Revision ID: 0801_session_id_keys
Revises: 0701_folded_user_names
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

from read_model.listing_indexes import KEYS_FUNCTION, LISTED

revision: str = "0801_session_id_keys"
down_revision: str | Sequence[str] | None = "0701_folded_user_names"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TRIGRAM_INDEX = "ix_sessions_trgm_session_id"
KEYS = "ix_sessions_session_id_keys"


def upgrade() -> None:
    """The function of the session id's keys; its index follows, built concurrently."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP STATISTICS IF EXISTS st_sessions_session_id_text")
    op.execute(KEYS_FUNCTION)


def downgrade() -> None:
    """Revision 0601's trigram index of the session id with its separators as letters."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(f"DROP INDEX IF EXISTS {KEYS}")
    op.execute("DROP FUNCTION IF EXISTS session_id_keys(text, text)")
    text = "translate(session_id, '-_', 'жш')"
    op.execute(  # still there if the keys index was never built
        f"CREATE INDEX IF NOT EXISTS {TRIGRAM_INDEX} ON sessions "
        f"USING gin (tenant_id, {text} gin_trgm_ops) WHERE {LISTED}"
    )
    op.execute(
        f"CREATE STATISTICS IF NOT EXISTS st_sessions_session_id_text ON ({text}) FROM sessions"
    )
    op.execute("ANALYZE sessions")
